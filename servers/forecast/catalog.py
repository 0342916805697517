"""The models each forecast type offers, its defaults, and name lookup across types."""

from __future__ import annotations

from typing import Any

from servers.forecast.specs import FORECAST_TYPES, ModelSpec

DEFAULT_MODEL = {"univariate": "AutoETS", "multivariate": "AutoETS", "covariates": "ARIMAX", "samples": "AutoETS"}
DEFAULT_ENSEMBLE = {
    "univariate": ["AutoETS", "AutoARIMA", "AutoTheta"],
    "multivariate": ["VAR", "AutoETS", "AutoTheta"],
    "covariates": ["ARIMAX", "VARX", "AutoETS"],
    "samples": ["AutoETS", "AutoARIMA", "AutoTheta"],
}
TYPE_NOTES = {
    "univariate": "Each series is forecast on its own; series may differ in length.",
    "multivariate": "Univariate models forecast each channel on its own; VAR uses all channels jointly.",
    "covariates": "Default model: ARIMAX when future_covariates are given, else VARX. Univariate models "
    "serve as baselines that ignore the covariates. The default ensemble keeps the members the given "
    "covariates suit.",
    "samples": "Models that can simulate sample paths. An ensemble's paths are a mixture: each member "
    "contributes a share of the paths equal to its weight.",
}


class ModelCatalog:
    def __init__(self, specs: list[ModelSpec]) -> None:
        self.specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.name.lower() in {n.lower() for n in self.specs}:
                raise ValueError(f"two forecast models are named {spec.name!r}")
            self.specs[spec.name] = spec
        self._by_folded = {name.lower(): spec for name, spec in self.specs.items()}

    def lookup(self, name: str) -> ModelSpec | None:
        """The model called `name` (case-insensitive), whatever types it serves."""
        return self._by_folded.get(name.lower())

    def for_type(self, forecast_type: str) -> list[ModelSpec]:
        return [s for s in self.specs.values() if s.serves(forecast_type)]

    def names(self, forecast_type: str) -> list[str]:
        return [s.name for s in self.for_type(forecast_type)]

    def default_model(self, forecast_type: str, *, has_future: bool = False) -> str:
        if forecast_type == "covariates" and not has_future:
            return "VARX"
        return DEFAULT_MODEL[forecast_type]

    def default_ensemble(self, forecast_type: str, *, has_past: bool = False, has_future: bool = False) -> list[str]:
        members = DEFAULT_ENSEMBLE[forecast_type]
        if forecast_type == "covariates":
            members = [m for m in members if (m != "ARIMAX" or has_future) and (m != "VARX" or has_past)]
        return [m for m in members if m in self.specs]

    def describe(self, forecast_type: str | None = None) -> dict[str, Any]:
        types = [forecast_type] if forecast_type else list(FORECAST_TYPES)
        return {
            "types": [
                {
                    "type": t,
                    "default_model": DEFAULT_MODEL[t],
                    "default_ensemble": self.default_ensemble(t, has_past=True, has_future=True),
                    "notes": TYPE_NOTES[t],
                    "models": [spec.describe(t) for spec in self.for_type(t)],
                }
                for t in types
            ]
        }
