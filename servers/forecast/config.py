"""The forecast server's config section (`servers.forecast.config` in the hub's YAML)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class FoundationModelConfig(BaseModel):
    """A foundation-model plugin beyond the built-in ones (Chronos, TimesFM, Moirai)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$", description="model name in list_models")
    package: str = Field(description="import name whose presence activates the plugin, e.g. 'chronos'")
    loader: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'module:function' called as function(weights_path) that returns the model object",
    )
    weights: Path | None = Field(default=None, description="local directory holding the weights")
    description: str = ""
    samples: bool = Field(default=False, description="the model object also has sample() for sample paths")


class ForecastConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="longest a single tool call may fit for")
    max_concurrent_fits: int = Field(default=2, ge=1, le=64, description="fits running at once across all calls")
    max_series: int = Field(default=1000, ge=1, description="series in one call")
    max_points: int = Field(default=2_000_000, ge=1, description="numbers in one call's context and covariates")
    max_horizon: int = Field(default=1000, ge=1)
    max_sample_values: int = Field(default=2_000_000, ge=1, description="series x num_samples x horizon returned")
    foundation_weights: dict[str, Path] = Field(
        default_factory=dict,
        description="weights directory per built-in foundation model (keys: chronos, timesfm, moirai)",
    )
    foundation_models: list[FoundationModelConfig] = Field(default_factory=list)
    warm_up: bool = Field(default=True, description="import the model libraries in the background at start-up")
