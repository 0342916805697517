"""The two wire protocols of image backends: each takes a `Job` and returns PNG (or other) bytes.

- `openai`: `POST {base}/v1/images/generations` with `response_format: b64_json` (the
  stable-diffusion.cpp server and LocalAI speak it); `seed`, `negative_prompt` and `steps`
  travel as extra fields, which those servers read and others ignore.
- `a1111`: `POST {base}/sdapi/v1/txt2img` (Automatic1111, Forge): `images` is a list of base64.

Backend failures become ToolErrors: unreachable is `unavailable` (retryable), an HTTP error
status `upstream_error` (retryable for 5xx and 429), a body we cannot read `upstream_error`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import httpx2

from servers.images.config import ImageBackend
from servers.kit import ToolError


@dataclass(frozen=True)
class Job:
    prompt: str
    width: int
    height: int
    n: int
    seed: int | None = None
    negative_prompt: str | None = None
    steps: int | None = None


def openai_body(job: Job, backend: ImageBackend) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": job.prompt,
        "n": job.n,
        "size": f"{job.width}x{job.height}",
        "response_format": "b64_json",
    }
    if backend.model:
        body["model"] = backend.model
    for name in ("seed", "negative_prompt", "steps"):
        if getattr(job, name) is not None:
            body[name] = getattr(job, name)
    return body


def a1111_body(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": job.prompt,
        "width": job.width,
        "height": job.height,
        "batch_size": job.n,
        "seed": -1 if job.seed is None else job.seed,
    }
    if job.negative_prompt:
        body["negative_prompt"] = job.negative_prompt
    if job.steps is not None:
        body["steps"] = job.steps
    return body


def _decode(values: list[Any], name: str) -> list[bytes]:
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, ValueError, TypeError):
        raise ToolError(f"image backend {name!r} sent image data that is not base64", code="upstream_error") from None


async def generate(name: str, backend: ImageBackend, job: Job) -> list[bytes]:
    """The images `backend` draws for `job`, as encoded bytes (PNG for the backends here)."""
    base = backend.base_url.rstrip("/")
    if backend.type == "openai":
        url, body = base + "/v1/images/generations", openai_body(job, backend)
    else:
        url, body = base + "/sdapi/v1/txt2img", a1111_body(job)
    headers = {"authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}
    try:
        async with httpx2.AsyncClient(timeout=backend.timeout) as http:
            response = await http.post(url, json=body, headers=headers)
    except httpx2.TimeoutException:
        raise ToolError(f"image backend {name!r} took longer than {backend.timeout:g} s", code="timeout") from None
    except httpx2.HTTPError as exc:
        raise ToolError(
            f"image backend {name!r} is unreachable ({type(exc).__name__})", code="unavailable", retryable=True
        ) from None
    if response.status_code >= 400:
        raise ToolError(
            f"image backend {name!r} answered HTTP {response.status_code}: {response.text[:300]}",
            code="upstream_error",
            retryable=response.status_code >= 500 or response.status_code == 429,
        )
    try:
        data = response.json()
    except ValueError:
        raise ToolError(f"image backend {name!r} sent a body that is not JSON", code="upstream_error") from None
    values: list[Any] = []
    if isinstance(data, dict) and backend.type == "openai":
        values = [i.get("b64_json") for i in data.get("data") or [] if isinstance(i, dict)]
    elif isinstance(data, dict) and isinstance(data.get("images"), list):
        values = data["images"]
    if not values:
        raise ToolError(f"image backend {name!r} sent no images", code="upstream_error")
    return _decode(values, name)
