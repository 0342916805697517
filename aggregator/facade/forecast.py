"""HTTP face of the forecast server, routed onto its tools through the hub's dispatch path.

    POST /forecast/v1/<type>/forecast            body = the `forecast-<type>` tool's arguments
    POST /forecast/v1/<type>/forecast/ensemble   same, as an ensemble ("default" members unless named)
    POST /forecast/v1/<type>/backtest            body = `forecast-backtest` arguments (type from the path)
    GET  /forecast/v1/<type>/models              the type's entry of `forecast-list_models`

<type> is univariate, multivariate, covariates or samples (backtest: the first three). Answers
are the tools' structured results as JSON; errors are `{"error": {code, message, field?,
request_id}}` with the status the error code maps to (400 for bad input, 504 for a timeout...).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aggregator.facade.base import FacadeContext, FacadeHTTPError, request_id_of
from aggregator.facade.common import call_structured, guarded, json_object, json_response, read_capped
from aggregator.principal import Principal

SERVER = "forecast"
FORECAST_TYPES = ("univariate", "multivariate", "covariates", "samples")
BACKTEST_TYPES = ("univariate", "multivariate", "covariates")
MAX_BODY_BYTES = 32 * 1024 * 1024
# The server enforces its own per-call timeout (config timeout_s); this bounds the HTTP request.
FORECAST_TIMEOUT_S = 900.0
LIST_TIMEOUT_S = 30.0

Handler = Callable[[Principal, Request], Awaitable[Any]]


def _forecast_type(request: Request, allowed: tuple[str, ...]) -> str:
    forecast_type = str(request.path_params["type"])
    if forecast_type not in allowed:
        raise FacadeHTTPError(
            404, f"unknown forecast type {forecast_type!r}; types: {', '.join(allowed)}", code="not_found"
        )
    return forecast_type


async def _read_json(request: Request) -> dict[str, Any]:
    # The stdlib parser accepts NaN/Infinity, so the tool can name the offending field.
    body = await read_capped(request, MAX_BODY_BYTES)
    return json_object(body, not_object="body must be a JSON object of tool arguments")


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    async def call(principal: Principal, request: Request, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await call_structured(ctx, principal, request, f"{SERVER}-{tool}", arguments)

    def endpoint(handler: Handler, *, listing: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def answer(principal: Principal, request: Request) -> Response:
            return json_response(await handler(principal, request), request_id_of(request))

        async def respond(request: Request) -> Response:
            # Read per request: the timeouts are module settings (tests shorten them).
            return await guarded(ctx, request, answer, LIST_TIMEOUT_S if listing else FORECAST_TIMEOUT_S)

        return respond

    async def forecast(principal: Principal, request: Request) -> Any:
        forecast_type = _forecast_type(request, FORECAST_TYPES)
        return await call(principal, request, forecast_type, await _read_json(request))

    async def forecast_ensemble(principal: Principal, request: Request) -> Any:
        forecast_type = _forecast_type(request, FORECAST_TYPES)
        arguments = await _read_json(request)
        if "model" in arguments:
            raise FacadeHTTPError(
                400,
                "this route forecasts an ensemble: send `ensemble` (and `weights`), or POST "
                f"/forecast/v1/{forecast_type}/forecast for a single model",
                code="invalid_argument",
                param="model",
            )
        if "ensemble" not in arguments and "weights" not in arguments:
            arguments["ensemble"] = "default"
        return await call(principal, request, forecast_type, arguments)

    async def backtest(principal: Principal, request: Request) -> Any:
        forecast_type = _forecast_type(request, BACKTEST_TYPES)
        arguments = await _read_json(request)
        given = arguments.get("type", forecast_type)
        if given != forecast_type:
            raise FacadeHTTPError(
                400,
                f"type {given!r} in the body contradicts the path ({forecast_type})",
                code="invalid_argument",
                param="type",
            )
        return await call(principal, request, "backtest", {**arguments, "type": forecast_type})

    async def models(principal: Principal, request: Request) -> Any:
        forecast_type = _forecast_type(request, FORECAST_TYPES)
        listing = await call(principal, request, "list_models", {"type": forecast_type})
        return listing["types"][0]

    return [
        Route("/forecast/v1/{type}/forecast", endpoint(forecast), methods=["POST"]),
        Route("/forecast/v1/{type}/forecast/ensemble", endpoint(forecast_ensemble), methods=["POST"]),
        Route("/forecast/v1/{type}/backtest", endpoint(backtest), methods=["POST"]),
        Route("/forecast/v1/{type}/models", endpoint(models, listing=True), methods=["GET"]),
    ]
