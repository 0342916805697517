"""Foundation-model plugins (Chronos, TimesFM, Moirai, or your own): active only when present.

A plugin is a Python package plus a directory of local weights. Nothing is ever downloaded:
the plugin's status is one of

    ready                                   package importable and weights directory present
    not installed (pip install ...)         the package is missing
    no local weights at PATH                the weights directory is missing (or not configured)
    failed to load: ...                     the loader raised (the model stays unavailable)

and `list_models` shows it. The loader, `"module:function"`, is called once as
`function(weights_path)` and returns an object with

    predict_quantiles(context: ndarray[t], horizon: int, quantile_levels: list[float])
        -> (mean: ndarray[horizon], quantiles: ndarray[len(quantile_levels), horizon])

and, for plugins that declare `samples`, also
`sample(context, horizon, num_samples, seed) -> ndarray[num_samples, horizon]`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from servers.forecast.core import Forecast, QuantileGrid, Seasonality, Series, monotone
from servers.forecast.specs import ModelSpec
from servers.forecast.statistical import channelwise

_log = logging.getLogger("toolmux.forecast")

MIN_FOUNDATION_CONTEXT = 3


@dataclass
class FoundationPlugin:
    name: str
    package: str
    loader: str
    weights: Path | None
    description: str = ""
    install_hint: str = ""
    samples: bool = False
    config_key: str = ""
    _model: Any = field(default=None, init=False, repr=False)
    _load_error: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def installed(self) -> bool:
        try:
            return importlib.util.find_spec(self.package) is not None
        except (ImportError, ValueError):  # a missing parent package of a dotted name
            return False

    def status(self) -> str:
        if not self.installed():
            hint = self.install_hint or self.package
            return f"not installed (pip install {hint})"
        if self.weights is None:
            where = f"foundation_weights.{self.config_key}" if self.config_key else "weights"
            return f"no local weights configured (set servers.forecast.config.{where})"
        if not self.weights.exists():
            return f"no local weights at {self.weights}"
        if self._load_error is not None:
            return f"failed to load: {self._load_error}"
        return "ready"

    def model(self) -> Any:
        """The loaded model (loaded once, on first use, in the calling worker thread)."""
        with self._lock:
            if self._model is None:
                module_name, _, attribute = self.loader.partition(":")
                try:
                    load = getattr(importlib.import_module(module_name), attribute)
                    self._model = load(self.weights)
                except Exception as exc:
                    self._load_error = f"{type(exc).__name__}: {exc}"[:300]
                    _log.exception("foundation model %s failed to load from %s", self.name, self.weights)
                    raise
            return self._model

    # --- as a catalog entry ---------------------------------------------------------------------
    def _predict(self, y: np.ndarray, horizon: int, grid: QuantileGrid, seasonality: Seasonality) -> Forecast:
        mean, quantiles = self.model().predict_quantiles(y, horizon, list(grid.levels))
        mean = np.asarray(mean, dtype=float).reshape(horizon)
        quantiles = np.asarray(quantiles, dtype=float).reshape(len(grid.levels), horizon)
        return Forecast(mean=mean, quantiles=monotone(quantiles))

    def _sample(
        self, y: np.ndarray, horizon: int, paths: int, seasonality: Seasonality, seed: int | None
    ) -> np.ndarray:
        return np.asarray(self.model().sample(y, horizon, paths, seed), dtype=float).reshape(paths, horizon)

    def _check(self, series: Series, seasonality: Seasonality, horizon: int) -> str | None:
        if series.length < MIN_FOUNDATION_CONTEXT:
            return f"has {series.length} points; {self.name} needs at least {MIN_FOUNDATION_CONTEXT}"
        return None

    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            library=self.package,
            summary=self.description or f"Foundation model from the '{self.package}' package (local weights).",
            native="univariate",
            fit=channelwise(self._predict),
            simulate=self._sample if self.samples else None,
            check=self._check,
            intervals="model",
            seasonality="learned",
            kind="foundation",
            min_context=f"{MIN_FOUNDATION_CONTEXT} points",
            status=self.status,
        )


ADAPTERS = "servers.forecast.foundation_adapters"


def builtin_plugins(weights: dict[str, Path], default_root: Path) -> list[FoundationPlugin]:
    """Chronos, TimesFM and Moirai; weights from config, else `<data_dir>/forecast/models/<key>`."""

    def where(key: str) -> Path:
        return weights.get(key) or default_root / key

    return [
        FoundationPlugin(
            name="Chronos",
            package="chronos",
            loader=f"{ADAPTERS}:load_chronos",
            weights=where("chronos"),
            description="Amazon Chronos / Chronos-Bolt / Chronos-2 pretrained forecaster (zero-shot quantiles).",
            install_hint="chronos-forecasting",
            config_key="chronos",
        ),
        FoundationPlugin(
            name="TimesFM",
            package="timesfm",
            loader=f"{ADAPTERS}:load_timesfm",
            weights=where("timesfm"),
            description="Google TimesFM 2.5 pretrained forecaster (zero-shot; deciles, interpolated between).",
            install_hint="timesfm[torch]",
            config_key="timesfm",
        ),
        FoundationPlugin(
            name="Moirai",
            package="uni2ts",
            loader=f"{ADAPTERS}:load_moirai",
            weights=where("moirai"),
            description="Salesforce Moirai universal forecaster (zero-shot; quantiles from sample paths).",
            install_hint="uni2ts",
            samples=True,
            config_key="moirai",
        ),
    ]
