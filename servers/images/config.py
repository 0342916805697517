"""The images server's config section.

    images:
      backends:
        sd:      {type: openai, base_url: http://127.0.0.1:7860, model: sd-v1-5}   # sd.cpp server, LocalAI
        forge:   {type: a1111, base_url: http://127.0.0.1:7861}                     # Automatic1111 / Forge
      bucket: default
      busy_wait_seconds: 30

A request's `model` names a backend; the first one is the default. With no backend the
`generate` tool is absent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageBackend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["openai", "a1111"] = Field(
        description="openai: POST /v1/images/generations (stable-diffusion.cpp server, LocalAI); "
        "a1111: POST /sdapi/v1/txt2img (Automatic1111, Forge)"
    )
    base_url: str = Field(description="e.g. http://127.0.0.1:7860 (no /v1)")
    model: str | None = Field(None, description="the model name sent to an openai-type backend")
    api_key: str | None = None
    timeout: float = Field(600.0, gt=0, description="seconds one generation may take")
    max_pixels: int = Field(2048 * 2048, gt=0, description="largest width x height accepted")


class ImagesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backends: dict[str, ImageBackend] = Field(default_factory=dict)
    bucket: str = Field("default", description="storage bucket for generated images")
    prefix: str = Field("images/", description="key prefix of generated images")
    storage_ttl_seconds: int | None = Field(None, ge=1, description="delete stored images after this long")
    busy_wait_seconds: float = Field(30.0, ge=0, description="how long a request waits for a busy backend")
