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

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount, stdlib_loads
from aggregator.protocol.errors import ErrorCode, RequestError

SERVER = "forecast"
FORECAST_TYPES = ("univariate", "multivariate", "covariates", "samples")
BACKTEST_TYPES = ("univariate", "multivariate", "covariates")


def _forecast_type(call: Call, allowed: tuple[str, ...]) -> str:
    forecast_type = str(call.request.path_params["type"])
    if forecast_type not in allowed:
        raise RequestError(
            f"unknown forecast type {forecast_type!r}; types: {', '.join(allowed)}", code=ErrorCode.NOT_FOUND
        )
    return forecast_type


async def _arguments(call: Call) -> dict[str, Any]:
    # The stdlib parser accepts NaN/Infinity, so the tool can name the offending field.
    return await call.json(loads=stdlib_loads)


async def _answer(call: Call, tool: str, arguments: dict[str, Any]) -> Response:
    return call.json_response(await call.structured(f"{SERVER}-{tool}", arguments))


@endpoint(limit="forecast", body="json")
async def forecast(call: Call) -> Response:
    forecast_type = _forecast_type(call, FORECAST_TYPES)
    return await _answer(call, forecast_type, await _arguments(call))


@endpoint(limit="forecast", body="json")
async def forecast_ensemble(call: Call) -> Response:
    forecast_type = _forecast_type(call, FORECAST_TYPES)
    arguments = await _arguments(call)
    if "model" in arguments:
        raise RequestError(
            "this route forecasts an ensemble: send `ensemble` (and `weights`), or POST "
            f"/forecast/v1/{forecast_type}/forecast for a single model",
            field="model",
        )
    if "ensemble" not in arguments and "weights" not in arguments:
        arguments["ensemble"] = "default"
    return await _answer(call, forecast_type, arguments)


@endpoint(limit="forecast", body="json")
async def backtest(call: Call) -> Response:
    forecast_type = _forecast_type(call, BACKTEST_TYPES)
    arguments = await _arguments(call)
    given = arguments.get("type", forecast_type)
    if given != forecast_type:
        raise RequestError(f"type {given!r} in the body contradicts the path ({forecast_type})", field="type")
    return await _answer(call, "backtest", {**arguments, "type": forecast_type})


@endpoint(limit="forecast_models")
async def models(call: Call) -> Response:
    forecast_type = _forecast_type(call, FORECAST_TYPES)
    listing = await call.structured(f"{SERVER}-list_models", {"type": forecast_type})
    return call.json_response(listing["types"][0])


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(
        ctx,
        [
            ("POST", "/forecast/v1/{type}/forecast", forecast),
            ("POST", "/forecast/v1/{type}/forecast/ensemble", forecast_ensemble),
            ("POST", "/forecast/v1/{type}/backtest", backtest),
            ("GET", "/forecast/v1/{type}/models", models),
        ],
    )
