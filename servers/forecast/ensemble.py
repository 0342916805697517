"""Which models a call runs (one model, or an ensemble with weights) and how members combine.

Weights: a member without a weight gets 1, a weight of 0 removes the member, the rest are
normalised to sum to 1. Members combine by weighted averaging of their means and of each
quantile level (quantile averaging keeps quantiles ordered and shrinks towards the consensus).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from servers.forecast.catalog import ModelCatalog
from servers.forecast.core import Forecast, monotone
from servers.kit import ToolError


@dataclass(frozen=True)
class Selection:
    members: tuple[str, ...]
    weights: dict[str, float]
    disabled: tuple[str, ...] = ()
    ensemble: bool = False


def resolve_model(name: str, field: str, forecast_type: str, catalog: ModelCatalog) -> str:
    spec = catalog.lookup(name)
    offered = ", ".join(catalog.names(forecast_type))
    if spec is None:
        raise ToolError(f"{field}: unknown model {name!r}; {forecast_type} models: {offered}", field=field)
    if not spec.serves(forecast_type):
        kind = "a model without sample paths" if forecast_type == "samples" else f"a {spec.native} model"
        raise ToolError(
            f"{field}: {spec.name} is {kind}, not available for {forecast_type} forecasts; {forecast_type} "
            f"models: {offered}",
            field=field,
        )
    status = spec.status()
    if status != "ready":
        raise ToolError(f"{field}: {spec.name} is unavailable: {status}", code="unavailable", field=field)
    return spec.name


def select(
    args: dict[str, Any],
    forecast_type: str,
    catalog: ModelCatalog,
    *,
    default_model: str,
    default_ensemble: list[str],
) -> Selection:
    model, ensemble, weights = args.get("model"), args.get("ensemble"), args.get("weights")
    if model is not None and ensemble is not None:
        raise ToolError("give either model or ensemble, not both", field="ensemble")
    if model is not None and weights is not None:
        raise ToolError("weights apply to an ensemble; drop weights or give ensemble instead of model", field="weights")
    if ensemble is None and weights is None:
        name = resolve_model(model if model is not None else default_model, "model", forecast_type, catalog)
        return Selection(members=(name,), weights={name: 1.0})

    if ensemble == "default" or (ensemble is None and not weights):
        candidates = [(name, "ensemble") for name in default_ensemble]
    elif ensemble is None:
        candidates = [(name, f"weights.{name}") for name in weights or {}]
    else:
        candidates = [(name, f"ensemble.{i}") for i, name in enumerate(ensemble)]
    if not candidates:
        raise ToolError(
            f"no default ensemble fits these inputs for {forecast_type}; name the members", field="ensemble"
        )
    members = [resolve_model(name, field, forecast_type, catalog) for name, field in candidates]
    if len(set(members)) != len(members):
        raise ToolError("ensemble names a model twice", field="ensemble")

    given: dict[str, float] = {}
    for key, value in (weights or {}).items():
        field = f"weights.{key}"
        spec = catalog.lookup(key)
        if spec is None or not spec.serves(forecast_type):
            resolve_model(key, field, forecast_type, catalog)  # raises the unknown / other-type error
        assert spec is not None
        if spec.name not in members:
            raise ToolError(f"{field}: {spec.name} is not a member of the ensemble ({', '.join(members)})", field=field)
        if not np.isfinite(value) or value < 0:
            raise ToolError(f"{field}: a weight must be a finite number >= 0", field=field)
        given[spec.name] = float(value)
    raw = {name: given.get(name, 1.0) for name in members}
    active = {name: w for name, w in raw.items() if w > 0}
    if not active:
        raise ToolError("every ensemble member has weight 0; give at least one a positive weight", field="weights")
    total = sum(active.values())
    return Selection(
        members=tuple(active),
        weights={name: w / total for name, w in active.items()},
        disabled=tuple(name for name, w in raw.items() if w == 0),
        ensemble=True,
    )


def combine(forecasts: dict[str, Forecast], weights: dict[str, float]) -> Forecast:
    """Weighted average of the members present (weights renormalised over them)."""
    present = [name for name in weights if name in forecasts]
    total = sum(weights[name] for name in present)
    mean = sum(weights[name] / total * forecasts[name].mean for name in present)
    quantiles = sum(weights[name] / total * forecasts[name].quantiles for name in present)
    return Forecast(mean=np.asarray(mean), quantiles=monotone(np.asarray(quantiles)))


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split `total` sample paths between members in proportion to their weights (largest remainder)."""
    exact = {name: w * total for name, w in weights.items()}
    counts = {name: int(np.floor(x)) for name, x in exact.items()}
    left = total - sum(counts.values())
    for name in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[:left]:
        counts[name] += 1
    return counts
