"""Loaders for the built-in foundation-model plugins (see `foundation.py` for the interface).

Written against each project's published inference API; they run only when the package and a
local weights directory are present (never on CI here: no weights can be fetched offline).
torch and the model packages are imported inside the loaders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TIMESFM_DECILES = np.linspace(0.1, 0.9, 9)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, list | tuple):
        return np.stack([_numpy(v) for v in value])
    if hasattr(value, "detach"):  # a torch tensor (torch ships no types here)
        array: np.ndarray = value.detach().float().cpu().numpy()
        return array
    return np.asarray(value, dtype=float)


class ChronosAdapter:
    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict_quantiles(
        self, context: np.ndarray, horizon: int, quantile_levels: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        quantiles, mean = self.pipeline.predict_quantiles(
            torch.tensor(context, dtype=torch.float32)[None, :],
            prediction_length=horizon,
            quantile_levels=list(quantile_levels),
        )
        q = _numpy(quantiles).reshape(-1, horizon, len(quantile_levels))[0]
        return _numpy(mean).reshape(-1, horizon)[0], q.T


def load_chronos(weights: Path) -> ChronosAdapter:
    import torch
    from chronos import BaseChronosPipeline

    pipeline = BaseChronosPipeline.from_pretrained(str(weights), device_map="cpu", torch_dtype=torch.float32)
    return ChronosAdapter(pipeline)


class TimesFMAdapter:
    def __init__(self, model: Any, timesfm: Any) -> None:
        self.model = model
        self.timesfm = timesfm
        self.compiled_horizon = 0

    def predict_quantiles(
        self, context: np.ndarray, horizon: int, quantile_levels: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        if horizon > self.compiled_horizon:
            self.compiled_horizon = max(256, horizon)
            self.model.compile(
                self.timesfm.ForecastConfig(
                    max_context=1024,
                    max_horizon=self.compiled_horizon,
                    normalize_inputs=True,
                    use_continuous_quantile_head=True,
                )
            )
        point, quantiles = self.model.forecast(horizon=horizon, inputs=[np.asarray(context, dtype=np.float32)])
        deciles = _numpy(quantiles)[0][:, 1:10]  # (horizon, 9): column 0 is the mean
        # TimesFM predicts deciles only: other levels are interpolated, and clamped outside 0.1-0.9.
        q = np.stack([[np.interp(level, TIMESFM_DECILES, row) for row in deciles] for level in quantile_levels])
        return _numpy(point)[0], q


def load_timesfm(weights: Path) -> TimesFMAdapter:
    import timesfm

    model = timesfm.TimesFM_2p5_200M_torch.from_pretrained(str(weights))
    return TimesFMAdapter(model, timesfm)


class MoiraiAdapter:
    def __init__(self, module: Any) -> None:
        self.module = module

    def sample(self, context: np.ndarray, horizon: int, num_samples: int, seed: int | None) -> np.ndarray:
        import torch
        from uni2ts.model.moirai import MoiraiForecast

        if seed is not None:
            torch.manual_seed(seed)
        model = MoiraiForecast(
            module=self.module,
            prediction_length=horizon,
            context_length=len(context),
            patch_size="auto",
            num_samples=num_samples,
            target_dim=1,
            feat_dynamic_real_dim=0,
            past_feat_dynamic_real_dim=0,
        )
        target = torch.tensor(context, dtype=torch.float32).reshape(1, -1, 1)
        with torch.no_grad():
            paths = model(
                past_target=target,
                past_observed_target=torch.ones_like(target, dtype=torch.bool),
                past_is_pad=torch.zeros((1, len(context)), dtype=torch.bool),
            )
        return _numpy(paths).reshape(num_samples, horizon)

    def predict_quantiles(
        self, context: np.ndarray, horizon: int, quantile_levels: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        paths = self.sample(context, horizon, 200, 0)
        return paths.mean(axis=0), np.quantile(paths, list(quantile_levels), axis=0)


def load_moirai(weights: Path) -> MoiraiAdapter:
    from uni2ts.model.moirai import MoiraiModule

    return MoiraiAdapter(MoiraiModule.from_pretrained(str(weights)))
