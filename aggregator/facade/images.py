"""OpenAI-compatible `POST /v1/images/generations`, a translation onto the `images-generate` tool.

`response_format: url` (the default) answers with the storage URLs the tool returns;
`b64_json` reads each image back through `storage-get_object` (as the caller: a key that may
generate but not read storage gets the refusal). A busy backend is a 503 with Retry-After.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute

from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount, render_openai
from aggregator.protocol.errors import ErrorCode, RequestError, ToolmuxError

GENERATE_TOOL = "images-generate"
GET_TOOL = "storage-get_object"
_PASSED = ("prompt", "n", "size", "model", "seed", "negative_prompt", "steps")


def generate_arguments(body: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise RequestError("missing required parameter: 'prompt'", field="prompt", reason="missing_required_parameter")
    if body.get("response_format", "url") not in ("url", "b64_json"):
        raise RequestError("'response_format' must be url or b64_json", field="response_format", reason="invalid_value")
    return {k: body[k] for k in _PASSED if body.get(k) is not None}


async def _b64(call: Call, image: dict[str, Any]) -> str:
    stored = await call.structured(GET_TOOL, {"bucket": image["bucket"], "key": image["key"], "encoding": "base64"})
    data = stored.get("base64")
    if not isinstance(data, str):
        raise ToolmuxError("storage sent the image back without its bytes", code=ErrorCode.UPSTREAM_ERROR)
    return data


@endpoint(limit="images", body="json", render=render_openai)
async def generations(call: Call) -> Response:
    body = await call.json()
    answer = await call.structured(GENERATE_TOOL, generate_arguments(body))
    images = answer.get("images") or []
    if body.get("response_format", "url") == "b64_json":
        data = [{"b64_json": await _b64(call, image), "revised_prompt": body["prompt"]} for image in images]
    else:
        data = [{"url": image["url"], "revised_prompt": body["prompt"]} for image in images]
    return call.json_response({"created": int(time.time()), "data": data})


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(ctx, [("POST", "/v1/images/generations", generations)])
