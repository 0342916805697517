"""OpenAI-compatible HTTP face: `/v1/models`, `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`.

Each route is a translation onto a `models-*` tool call through the hub's dispatch (same keys,
scopes, limits, metrics as MCP). Errors use OpenAI's body, `{"error": {message, type, param,
code}}`, with the matching HTTP status. Answers carry `x-toolmux-*` headers: overhead (time
spent outside the answering backend), attempts, cost, deployment and cache status.
Routes are registered per path (never a `/v1` catch-all) so other faces can add `/v1/...` routes.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import BaseRoute

import schemas
from aggregator.facade import chat_hub_tools, workspaces_chat
from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount, render_openai
from aggregator.facade.llm_support import ToolStream, meta_headers, no_store
from aggregator.protocol.errors import RequestError, ToolmuxError, openai_body

CHAT_TOOL = "models-chat"
EMBED_TOOL = "models-embed"
LIST_TOOL = "models-list_models"


def _chat_fields() -> frozenset[str]:
    return frozenset(schemas.tool("models", "chat")["inputSchema"]["properties"])


CHAT_FIELDS = _chat_fields()


def missing(param: str, message: str | None = None) -> RequestError:
    return RequestError(
        message or f"missing required parameter: {param!r}", field=param, reason="missing_required_parameter"
    )


def sse_error(error: ToolmuxError) -> bytes:
    """An error after the stream started: one SSE event in OpenAI's body."""
    return b"data: " + orjson.dumps(openai_body(error, "")) + b"\n\n"


def chat_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """The request body as `models-chat` arguments; unknown fields go to `extra`."""
    if "model" not in body:
        raise missing("model", "you must provide a model parameter")
    if "messages" not in body:
        raise missing("messages")
    args = {k: v for k, v in body.items() if k in CHAT_FIELDS and k != "extra"}
    extra = {k: v for k, v in body.items() if k not in CHAT_FIELDS}
    if isinstance(body.get("extra"), dict):
        extra.update(body["extra"])
    if extra:
        args["extra"] = extra
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", field="stream", reason="invalid_type")
    if stream is None:
        args.pop("stream", None)
    return args


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _usage_chunk(answer: dict[str, Any], obj: str) -> bytes:
    chunk = {
        "id": answer.get("id", ""),
        "object": obj,
        "created": answer.get("created", int(time.time())),
        "model": answer.get("model", ""),
        "choices": [],
        "usage": answer.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _public(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "toolmux"}


def _float32_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _args_for(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    args = chat_arguments(body)
    if no_store(call.request):
        args["cache"] = "no-store"
    return args


@endpoint(limit="llm", render=render_openai)
async def list_models(call: Call) -> Response:
    answer = await call.structured(LIST_TOOL, {})
    return call.json_response({"object": "list", "data": answer.get("data", [])})


@endpoint(limit="llm", render=render_openai)
async def get_model(call: Call) -> Response:
    wanted = call.request.path_params["model"]
    answer = await call.structured(LIST_TOOL, {})
    for entry in answer.get("data", []):
        if entry.get("id") == wanted:
            return call.json_response(entry)
    raise RequestError(f"the model {wanted!r} does not exist", code="not_found", field="model")


@endpoint(limit="llm", body="json", render=render_openai)
async def chat_completions(call: Call) -> Any:
    started = time.perf_counter()
    body = await call.json()
    if workspaces_chat.is_workspace_model(body):  # `workspace:<alias>`: a workspace run, not a model call
        return await workspaces_chat.chat_completion(call, body, error_chunk=sse_error)
    if chat_hub_tools.FIELD in body:  # opt-in: the hub runs its own tools for the model
        hub_body = {k: v for k, v in body.items() if k != chat_hub_tools.FIELD}
        return await chat_hub_tools.chat_completion(call, body, _args_for(call, hub_body))
    args = _args_for(call, body)
    if args.get("stream"):
        include_usage = _wants_usage(body)

        def end(answer: dict[str, Any]) -> bytes:
            tail = _usage_chunk(answer, "chat.completion.chunk") if include_usage else b""
            return tail + b"data: [DONE]\n\n"

        return ToolStream(
            call,
            CHAT_TOOL,
            args,
            media_type="text/event-stream",
            encode_chunk=lambda message: b"data: " + message.encode() + b"\n\n",
            encode_end=end,
            encode_error=sse_error,
        )
    answer = await call.structured(CHAT_TOOL, args)
    return Response(
        orjson.dumps(_public(answer)),
        media_type="application/json",
        headers=meta_headers(answer, started, call.request_id),
    )


def _completion_prompt(body: dict[str, Any]) -> str:
    if "model" not in body:
        raise missing("model", "you must provide a model parameter")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("'prompt' must be one string", field="prompt", reason="invalid_type")
    return prompt


def _completion_chunk(completion_id: str) -> Any:
    def chunk(message: str) -> bytes | None:
        data = orjson.loads(message)
        choice = (data.get("choices") or [{}])[0]
        text = (choice.get("delta") or {}).get("content") or ""
        if not text and not choice.get("finish_reason"):
            return None
        out = {
            "id": completion_id,
            "object": "text_completion",
            "created": data.get("created"),
            "model": data.get("model"),
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": choice.get("finish_reason")}],
        }
        return b"data: " + orjson.dumps(out) + b"\n\n"

    return chunk


def _completion_of(answer: dict[str, Any], completion_id: str) -> dict[str, Any]:
    choice = answer["choices"][0]
    text = (choice.get("message") or {}).get("content") or ""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": answer.get("created", int(time.time())),
        "model": answer.get("model"),
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": choice.get("finish_reason")}],
        "usage": answer.get("usage"),
    }


@endpoint(limit="llm", body="json", render=render_openai)
async def completions(call: Call) -> Any:
    started = time.perf_counter()
    body = await call.json()
    prompt = _completion_prompt(body)
    chat_body = {k: v for k, v in body.items() if k not in ("prompt", "suffix", "echo", "best_of")}
    args = _args_for(call, {**chat_body, "messages": [{"role": "user", "content": prompt}]})
    completion_id = "cmpl-" + uuid.uuid4().hex[:24]
    if args.get("stream"):
        include_usage = _wants_usage(body)

        def end(answer: dict[str, Any]) -> bytes:
            tail = _usage_chunk({**answer, "id": completion_id}, "text_completion") if include_usage else b""
            return tail + b"data: [DONE]\n\n"

        return ToolStream(
            call,
            CHAT_TOOL,
            args,
            media_type="text/event-stream",
            encode_chunk=_completion_chunk(completion_id),
            encode_end=end,
            encode_error=sse_error,
        )
    answer = await call.structured(CHAT_TOOL, args)
    out = _completion_of(answer, completion_id)
    return Response(
        orjson.dumps(out), media_type="application/json", headers=meta_headers(answer, started, call.request_id)
    )


def _embedding_arguments(body: dict[str, Any]) -> dict[str, Any]:
    if "model" not in body:
        raise missing("model", "you must provide a model parameter")
    if "input" not in body:
        raise missing("input")
    raw = body["input"]
    if isinstance(raw, list) and raw and not all(isinstance(item, str) for item in raw):
        raise RequestError(
            "'input' must be a string or a list of strings (token arrays are not supported)",
            field="input",
            reason="invalid_type",
        )
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise RequestError("'encoding_format' must be 'float' or 'base64'", field="encoding_format")
    return {k: body[k] for k in ("model", "input", "dimensions", "user") if body.get(k) is not None}


@endpoint(limit="llm", body="json", render=render_openai)
async def embeddings(call: Call) -> Response:
    started = time.perf_counter()
    body = await call.json()
    args = _embedding_arguments(body)
    if no_store(call.request):
        args["cache"] = "no-store"
    answer = await call.structured(EMBED_TOOL, args)
    out = _public(answer)
    if body.get("encoding_format", "float") == "base64":
        out["data"] = [{**item, "embedding": _float32_base64(item["embedding"])} for item in out["data"]]
    return Response(
        orjson.dumps(out), media_type="application/json", headers=meta_headers(answer, started, call.request_id)
    )


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(
        ctx,
        [
            ("GET", "/v1/models", list_models),
            ("GET", "/v1/models/{model:path}", get_model),
            ("POST", "/v1/chat/completions", chat_completions),
            ("POST", "/v1/completions", completions),
            ("POST", "/v1/embeddings", embeddings),
        ],
    )
