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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import schemas
from aggregator.facade import workspaces_chat
from aggregator.facade.base import FacadeContext, FacadeHTTPError, request_id_of
from aggregator.facade.llm_support import (
    LLMFacadeLimits,
    ToolStream,
    call_structured,
    meta_headers,
    no_store,
    read_json_body,
    status_of,
)
from servers.kit import ToolError

CHAT_TOOL = "models-chat"
EMBED_TOOL = "models-embed"
LIST_TOOL = "models-list_models"

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_CODE_BY_TOOL_CODE = {
    "payment_required": "budget_exceeded",
    "rate_limited": "rate_limit_exceeded",
    "timeout": "timeout",
}


def _chat_fields() -> frozenset[str]:
    return frozenset(schemas.tool("models", "chat")["inputSchema"]["properties"])


CHAT_FIELDS = _chat_fields()


def error_body(status: int, error: ToolError | FacadeHTTPError) -> dict[str, Any]:
    if isinstance(error, ToolError):
        param = error.field or None
        if error.code == "not_found" and param == "model":
            code: str | None = "model_not_found"
        elif error.code == "invalid_argument" and "missing required field" in error.message:
            code = "missing_required_parameter"
        elif error.code == "invalid_argument":
            code = "invalid_value" if param else None
        else:
            code = _CODE_BY_TOOL_CODE.get(error.code, error.code)
    else:
        param, code = error.param, error.code
    return {
        "error": {
            "message": error.message,
            "type": _TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def openai_error(error: ToolError | FacadeHTTPError, request_id: str) -> JSONResponse:
    status = error.status if isinstance(error, FacadeHTTPError) else status_of(error)
    headers = {"x-request-id": request_id}
    if isinstance(error, FacadeHTTPError):
        headers.update(error.headers)
        if status == 401:
            headers.setdefault("www-authenticate", "Bearer")
    elif error.retry_after is not None:
        headers["retry-after"] = str(max(int(error.retry_after + 0.999), 1))
    return JSONResponse(error_body(status, error), status_code=status, headers=headers)


def _sse_error(status: int, error: ToolError | FacadeHTTPError) -> bytes:
    return b"data: " + orjson.dumps(error_body(status, error)) + b"\n\n"


def chat_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """The request body as `models-chat` arguments; unknown fields go to `extra`."""
    if "model" not in body:
        raise FacadeHTTPError(
            400, "you must provide a model parameter", code="missing_required_parameter", param="model"
        )
    if "messages" not in body:
        raise FacadeHTTPError(
            400, "missing required parameter: 'messages'", code="missing_required_parameter", param="messages"
        )
    args = {k: v for k, v in body.items() if k in CHAT_FIELDS and k != "extra"}
    extra = {k: v for k, v in body.items() if k not in CHAT_FIELDS}
    if isinstance(body.get("extra"), dict):
        extra.update(body["extra"])
    if extra:
        args["extra"] = extra
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise FacadeHTTPError(400, "'stream' must be a boolean", code="invalid_type", param="stream")
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


def build_routes(ctx: FacadeContext, limits: LLMFacadeLimits | None = None) -> list[BaseRoute]:
    limits = limits or LLMFacadeLimits()

    def fail(error: ToolError | FacadeHTTPError, request_id: str) -> JSONResponse:
        return openai_error(error, request_id)

    async def list_models(request: Request) -> Response:
        request_id = request_id_of(request)
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            answer = await call_structured(ctx, principal, LIST_TOOL, {}, request_id=request_id, timeout=limits.timeout)
        except (ToolError, FacadeHTTPError) as exc:
            return fail(exc, request_id)
        return JSONResponse({"object": "list", "data": answer.get("data", [])}, headers={"x-request-id": request_id})

    async def get_model(request: Request) -> Response:
        request_id = request_id_of(request)
        wanted = request.path_params["model"]
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            answer = await call_structured(ctx, principal, LIST_TOOL, {}, request_id=request_id, timeout=limits.timeout)
            for entry in answer.get("data", []):
                if entry.get("id") == wanted:
                    return JSONResponse(entry, headers={"x-request-id": request_id})
            raise ToolError(f"the model {wanted!r} does not exist", code="not_found", field="model")
        except (ToolError, FacadeHTTPError) as exc:
            return fail(exc, request_id)

    async def chat_completions(request: Request) -> Any:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            body = await read_json_body(request, limits.max_body_bytes)
            if workspaces_chat.is_workspace_model(body):  # `workspace:<alias>`: a workspace run, not a model call
                return await workspaces_chat.chat_completion(
                    ctx, request, principal, body, request_id=request_id, error_response=fail, error_chunk=_sse_error
                )
            args = chat_arguments(body)
            if no_store(request):
                args["cache"] = "no-store"
            if args.get("stream"):
                include_usage = _wants_usage(body)

                def end(answer: dict[str, Any]) -> bytes:
                    tail = _usage_chunk(answer, "chat.completion.chunk") if include_usage else b""
                    return tail + b"data: [DONE]\n\n"

                return ToolStream(
                    ctx,
                    principal,
                    CHAT_TOOL,
                    args,
                    request_id=request_id,
                    timeout=limits.timeout,
                    media_type="text/event-stream",
                    encode_chunk=lambda message: b"data: " + message.encode() + b"\n\n",
                    encode_end=end,
                    encode_error=_sse_error,
                    error_response=fail,
                )
            answer = await call_structured(
                ctx, principal, CHAT_TOOL, args, request_id=request_id, timeout=limits.timeout
            )
        except (ToolError, FacadeHTTPError) as exc:
            return fail(exc, request_id)
        return Response(
            orjson.dumps(_public(answer)),
            media_type="application/json",
            headers=meta_headers(answer, started, request_id),
        )

    async def completions(request: Request) -> Any:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            body = await read_json_body(request, limits.max_body_bytes)
            if "model" not in body:
                raise FacadeHTTPError(
                    400, "you must provide a model parameter", code="missing_required_parameter", param="model"
                )
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise FacadeHTTPError(400, "'prompt' must be one string", code="invalid_type", param="prompt")
            chat_body = {k: v for k, v in body.items() if k not in ("prompt", "suffix", "echo", "best_of")}
            chat_body["messages"] = [{"role": "user", "content": prompt}]
            args = chat_arguments(chat_body)
            if no_store(request):
                args["cache"] = "no-store"
            completion_id = "cmpl-" + uuid.uuid4().hex[:24]
            if args.get("stream"):
                include_usage = _wants_usage(body)

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
                        "choices": [
                            {"text": text, "index": 0, "logprobs": None, "finish_reason": choice.get("finish_reason")}
                        ],
                    }
                    return b"data: " + orjson.dumps(out) + b"\n\n"

                def end(answer: dict[str, Any]) -> bytes:
                    tail = _usage_chunk({**answer, "id": completion_id}, "text_completion") if include_usage else b""
                    return tail + b"data: [DONE]\n\n"

                return ToolStream(
                    ctx,
                    principal,
                    CHAT_TOOL,
                    args,
                    request_id=request_id,
                    timeout=limits.timeout,
                    media_type="text/event-stream",
                    encode_chunk=chunk,
                    encode_end=end,
                    encode_error=_sse_error,
                    error_response=fail,
                )
            answer = await call_structured(
                ctx, principal, CHAT_TOOL, args, request_id=request_id, timeout=limits.timeout
            )
        except (ToolError, FacadeHTTPError) as exc:
            return fail(exc, request_id)
        choice = answer["choices"][0]
        out = {
            "id": completion_id,
            "object": "text_completion",
            "created": answer.get("created", int(time.time())),
            "model": answer.get("model"),
            "choices": [
                {
                    "text": (choice.get("message") or {}).get("content") or "",
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": choice.get("finish_reason"),
                }
            ],
            "usage": answer.get("usage"),
        }
        return Response(
            orjson.dumps(out), media_type="application/json", headers=meta_headers(answer, started, request_id)
        )

    async def embeddings(request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            body = await read_json_body(request, limits.max_body_bytes)
            if "model" not in body:
                raise FacadeHTTPError(
                    400, "you must provide a model parameter", code="missing_required_parameter", param="model"
                )
            if "input" not in body:
                raise FacadeHTTPError(
                    400, "missing required parameter: 'input'", code="missing_required_parameter", param="input"
                )
            raw = body["input"]
            if isinstance(raw, list) and raw and not all(isinstance(item, str) for item in raw):
                raise FacadeHTTPError(
                    400,
                    "'input' must be a string or a list of strings (token arrays are not supported)",
                    code="invalid_type",
                    param="input",
                )
            fmt = body.get("encoding_format", "float")
            if fmt not in ("float", "base64"):
                raise FacadeHTTPError(
                    400, "'encoding_format' must be 'float' or 'base64'", code="invalid_value", param="encoding_format"
                )
            args = {k: body[k] for k in ("model", "input", "dimensions", "user") if body.get(k) is not None}
            if no_store(request):
                args["cache"] = "no-store"
            answer = await call_structured(
                ctx, principal, EMBED_TOOL, args, request_id=request_id, timeout=limits.timeout
            )
        except (ToolError, FacadeHTTPError) as exc:
            return fail(exc, request_id)
        out = _public(answer)
        if fmt == "base64":
            out["data"] = [{**item, "embedding": _float32_base64(item["embedding"])} for item in out["data"]]
        return Response(
            orjson.dumps(out), media_type="application/json", headers=meta_headers(answer, started, request_id)
        )

    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return build_routes(ctx)
