"""The forecast server: binds the tools in `schemas/forecast.json` to `ForecastService`."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

from servers.forecast.backtest import backtest
from servers.forecast.catalog import ModelCatalog
from servers.forecast.config import ForecastConfig
from servers.forecast.foundation import FoundationPlugin, builtin_plugins
from servers.forecast.multichannel import statsmodels_models
from servers.forecast.service import ForecastService
from servers.forecast.statistical import statsforecast_models
from servers.kit import Domain, ServerSettings, ToolContext

_log = logging.getLogger("toolmux.forecast")

INSTRUCTIONS = (
    "Forecast numeric time series. Send the history as `context` and the number of steps as `horizon`; "
    "you get a median and quantiles per series. Use `univariate` for independent series, `multivariate` "
    "for several related channels, `covariates` when other variables explain the target, `samples` for "
    "sample paths. Pass `ensemble` (with optional `weights`) to average several models; call `backtest` "
    "to compare models on the data's own past, and `list_models` to see what each type offers."
)
LIBRARIES = ("statsforecast", "statsmodels")


def plugins(config: ForecastConfig, data_dir: Path) -> list[FoundationPlugin]:
    found = builtin_plugins(config.foundation_weights, data_dir / "forecast" / "models")
    for extra in config.foundation_models:
        found.append(
            FoundationPlugin(
                name=extra.name,
                package=extra.package,
                loader=extra.loader,
                weights=extra.weights,
                description=extra.description,
                samples=extra.samples,
            )
        )
    return found


def build_service(config: ForecastConfig, data_dir: Path) -> ForecastService:
    specs = [*statsforecast_models(), *statsmodels_models(), *(p.spec() for p in plugins(config, data_dir))]
    return ForecastService(config, ModelCatalog(specs))


def _warm_up() -> None:
    """Import the model libraries ahead of the first call (about 2 s for statsforecast)."""
    try:
        import statsforecast.models  # noqa: F401
        import statsmodels.tsa.api  # noqa: F401
    except Exception:  # the first call reports the problem with context
        _log.warning("forecast: warming up the model libraries failed", exc_info=True)


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(ForecastConfig)
    service = build_service(config, settings.data_dir)
    domain = Domain("forecast", hub=settings.hub, instructions=INSTRUCTIONS)
    domain.service = service

    async def forecast(forecast_type: str, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.forecast(forecast_type, args, ctx.progress)

    @domain.tool("univariate")
    async def univariate(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await forecast("univariate", args, ctx)

    @domain.tool("multivariate")
    async def multivariate(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await forecast("multivariate", args, ctx)

    @domain.tool("covariates")
    async def covariates(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await forecast("covariates", args, ctx)

    @domain.tool("samples")
    async def samples(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await service.samples(args, ctx.progress)

    @domain.tool("backtest")
    async def run_backtest(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await backtest(service, args, ctx.progress)

    @domain.tool("list_models")
    async def list_models(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return service.list_models(args.get("type"))

    async def health() -> dict[str, Any]:
        details: dict[str, Any] = {}
        for name in LIBRARIES:
            if importlib.util.find_spec(name) is None:
                details[name] = "not installed (pip install 'toolmux[forecast]')"
            else:
                details[name] = importlib.metadata.version(name)
        details["foundation_models"] = {
            s.name: s.status() for s in service.catalog.specs.values() if s.kind == "foundation"
        }
        return {"healthy": all(importlib.util.find_spec(n) is not None for n in LIBRARIES), "details": details}

    domain.health = health
    if config.warm_up:
        threading.Thread(target=_warm_up, name="forecast-warm-up", daemon=True).start()
    domain.check_complete()
    return domain
