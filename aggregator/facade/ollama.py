"""Ollama-compatible HTTP face for clients that only speak Ollama: `/api/tags`, `/api/chat`,
`/api/generate`, `/api/embed` (and the legacy `/api/embeddings`, `/api/version`).

Like the OpenAI face, every route is a `models-*` tool call. Streams are NDJSON (Ollama's
default is `stream: true`); errors are Ollama's `{"error": "..."}` with the HTTP status.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator.facade.base import FacadeContext, FacadeHTTPError, request_id_of
from aggregator.facade.llm_support import (
    LLMFacadeLimits,
    ToolStream,
    call_structured,
    meta_headers,
    read_json_body,
    status_of,
)
from aggregator.principal import Principal
from servers.kit import ToolError
from servers.models import translate_ollama as tr

OLLAMA_VERSION = "0.6.0"


def ollama_error(error: ToolError | FacadeHTTPError, request_id: str) -> JSONResponse:
    status = error.status if isinstance(error, FacadeHTTPError) else status_of(error)
    return JSONResponse({"error": error.message}, status_code=status, headers={"x-request-id": request_id})


def _ndjson_error(status: int, error: ToolError | FacadeHTTPError) -> bytes:
    return orjson.dumps({"error": error.message}) + b"\n"


def _model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FacadeHTTPError(400, "model is required", param="model")
    return model.removesuffix(":latest")


def build_routes(ctx: FacadeContext, limits: LLMFacadeLimits | None = None) -> list[BaseRoute]:
    limits = limits or LLMFacadeLimits()

    async def begin(request: Request) -> tuple[Principal, dict[str, Any]]:
        principal = ctx.authenticate(request)
        assert principal is not None
        return principal, await read_json_body(request, limits.max_body_bytes)

    def stream_response(
        principal: Principal, args: dict[str, Any], request_id: str, model: str, started: float, *, generate: bool
    ) -> ToolStream:
        def chunk(message: str) -> bytes | None:
            line = tr.chunk_to_ollama(orjson.loads(message), model)
            if line is None:
                return None
            if generate:
                line = {
                    "model": model,
                    "created_at": line["created_at"],
                    "response": line["message"]["content"],
                    "done": False,
                }
            return orjson.dumps(line) + b"\n"

        def end(answer: dict[str, Any]) -> bytes:
            final = tr.final_ollama_chunk(answer, model, started)
            if generate:
                final = {k: v for k, v in final.items() if k != "message"} | {"response": ""}
            return orjson.dumps(final) + b"\n"

        return ToolStream(
            ctx,
            principal,
            "models-chat",
            {**args, "stream": True},
            request_id=request_id,
            timeout=limits.timeout,
            media_type="application/x-ndjson",
            encode_chunk=chunk,
            encode_end=end,
            encode_error=_ndjson_error,
            error_response=ollama_error,
        )

    async def tags(request: Request) -> Response:
        request_id = request_id_of(request)
        try:
            principal = ctx.authenticate(request)
            assert principal is not None
            answer = await call_structured(
                ctx, principal, "models-list_models", {}, request_id=request_id, timeout=limits.timeout
            )
        except (ToolError, FacadeHTTPError) as exc:
            return ollama_error(exc, request_id)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        models = [
            {
                "name": entry["id"],
                "model": entry["id"],
                "modified_at": now,
                "size": 0,
                "digest": "",
                "details": {"format": "toolmux", "family": "toolmux", "parameter_size": "", "quantization_level": ""},
            }
            for entry in answer.get("data", [])
        ]
        return JSONResponse({"models": models}, headers={"x-request-id": request_id})

    async def version(request: Request) -> Response:
        # Clients probe this before they know a key is needed: no key is fine, a wrong one is not.
        try:
            ctx.authenticate(request, required=False)
        except FacadeHTTPError as exc:
            return ollama_error(exc, request_id_of(request))
        return JSONResponse({"version": OLLAMA_VERSION})

    async def chat(request: Request) -> Any:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            principal, body = await begin(request)
            model = _model_of(body)
            if not isinstance(body.get("messages"), list):
                raise FacadeHTTPError(400, "messages must be a list", param="messages")
            args = {"model": model, **tr.request_from_ollama(body)}
            if body.get("stream", True):
                return stream_response(principal, args, request_id, model, started, generate=False)
            answer = await call_structured(
                ctx, principal, "models-chat", args, request_id=request_id, timeout=limits.timeout
            )
        except (ToolError, FacadeHTTPError) as exc:
            return ollama_error(exc, request_id)
        out = tr.response_to_ollama(answer, model, started)
        return Response(
            orjson.dumps(out), media_type="application/json", headers=meta_headers(answer, started, request_id)
        )

    async def generate(request: Request) -> Any:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            principal, body = await begin(request)
            model = _model_of(body)
            prompt = body.get("prompt", "")
            if not isinstance(prompt, str):
                raise FacadeHTTPError(400, "prompt must be a string", param="prompt")
            messages = []
            if isinstance(body.get("system"), str) and body["system"]:
                messages.append({"role": "system", "content": body["system"]})
            messages.append({"role": "user", "content": prompt})
            args = {"model": model, **tr.request_from_ollama({**body, "messages": messages})}
            if body.get("stream", True):
                return stream_response(principal, args, request_id, model, started, generate=True)
            answer = await call_structured(
                ctx, principal, "models-chat", args, request_id=request_id, timeout=limits.timeout
            )
        except (ToolError, FacadeHTTPError) as exc:
            return ollama_error(exc, request_id)
        chat_out = tr.response_to_ollama(answer, model, started)
        out = {k: v for k, v in chat_out.items() if k != "message"} | {"response": chat_out["message"]["content"]}
        return Response(
            orjson.dumps(out), media_type="application/json", headers=meta_headers(answer, started, request_id)
        )

    async def embed(request: Request) -> Response:
        started = time.perf_counter()
        request_id = request_id_of(request)
        try:
            principal, body = await begin(request)
            model = _model_of(body)
            legacy = request.url.path.endswith("/embeddings")
            raw = body.get("prompt") if legacy else body.get("input")
            if not (isinstance(raw, str) or (isinstance(raw, list) and all(isinstance(x, str) for x in raw))):
                field = "prompt" if legacy else "input"
                raise FacadeHTTPError(400, f"{field} must be a string or a list of strings", param=field)
            answer = await call_structured(
                ctx,
                principal,
                "models-embed",
                {"model": model, "input": raw},
                request_id=request_id,
                timeout=limits.timeout,
            )
        except (ToolError, FacadeHTTPError) as exc:
            return ollama_error(exc, request_id)
        vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda d: d["index"])]
        headers = meta_headers(answer, started, request_id)
        if legacy:
            return Response(
                orjson.dumps({"embedding": vectors[0] if vectors else []}),
                media_type="application/json",
                headers=headers,
            )
        out = {
            "model": model,
            "embeddings": vectors,
            "prompt_eval_count": (answer.get("usage") or {}).get("prompt_tokens", 0),
        }
        return Response(orjson.dumps(out), media_type="application/json", headers=headers)

    return [
        Route("/api/tags", tags, methods=["GET"]),
        Route("/api/version", version, methods=["GET"]),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/embed", embed, methods=["POST"]),
        Route("/api/embeddings", embed, methods=["POST"]),
    ]


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return build_routes(ctx)
