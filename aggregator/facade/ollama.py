"""Ollama-compatible HTTP face for clients that only speak Ollama: `/api/tags`, `/api/chat`,
`/api/generate`, `/api/embed` (and the legacy `/api/embeddings`, `/api/version`), and the
routes clients probe before they chat (Open WebUI, the `ollama` library): `/api/show` and
`/api/ps`, answered from the aliases (every alias counts as loaded: the hub has no weights to load).

Like the OpenAI face, every route is a `models-*` tool call. Streams are NDJSON (Ollama's
default is `stream: true`); errors are Ollama's `{"error": "..."}` with the HTTP status.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import BaseRoute

from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount, render_ollama
from aggregator.facade.llm_support import ToolStream, meta_headers
from aggregator.protocol.errors import RequestError, ToolmuxError
from servers.models import translate_ollama as tr

OLLAMA_VERSION = "0.6.0"
CHAT_TOOL = "models-chat"


def _ndjson_error(error: ToolmuxError) -> bytes:
    return orjson.dumps({"error": error.message}) + b"\n"


def _model_of(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model is required", field="model")
    return model.removesuffix(":latest")


def _stream(call: Call, args: dict[str, Any], model: str, started: float, *, generate: bool) -> ToolStream:
    def chunk(message: str) -> bytes | None:
        line = tr.chunk_to_ollama(orjson.loads(message), model)
        if line is None:
            return None
        if generate:
            line = {"model": model, "created_at": line["created_at"], "response": line["message"]["content"]}
            line["done"] = False
        return orjson.dumps(line) + b"\n"

    def end(answer: dict[str, Any]) -> bytes:
        final = tr.final_ollama_chunk(answer, model, started)
        if generate:
            final = {k: v for k, v in final.items() if k != "message"} | {"response": ""}
        return orjson.dumps(final) + b"\n"

    return ToolStream(
        call,
        CHAT_TOOL,
        {**args, "stream": True},
        media_type="application/x-ndjson",
        encode_chunk=chunk,
        encode_end=end,
        encode_error=_ndjson_error,
    )


def _answer(call: Call, out: dict[str, Any], answer: dict[str, Any], started: float) -> Response:
    headers = meta_headers(answer, started, call.request_id)
    return Response(orjson.dumps(out), media_type="application/json", headers=headers)


@endpoint(limit="llm", render=render_ollama)
async def tags(call: Call) -> Response:
    answer = await call.structured("models-list_models", {})
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    details = {"format": "toolmux", "family": "toolmux", "parameter_size": "", "quantization_level": ""}
    models = [
        {"name": e["id"], "model": e["id"], "modified_at": now, "size": 0, "digest": "", "details": details}
        for e in answer.get("data", [])
    ]
    return call.json_response({"models": models})


# Clients probe this before they know a key is needed: no key is fine, a wrong one is not.
@endpoint(limit="llm", auth="optional", render=render_ollama)
async def version(call: Call) -> Response:
    return call.json_response({"version": OLLAMA_VERSION})


_DETAILS = {"parent_model": "", "format": "toolmux", "family": "toolmux", "families": ["toolmux"]}
_DETAILS |= {"parameter_size": "", "quantization_level": ""}
KEEP_ALIVE_S = 24 * 3600  # what /api/ps reports as "until unloaded"


async def _alias(call: Call, name: str) -> dict[str, Any]:
    answer = await call.structured("models-list_models", {})
    for entry in answer.get("data", []):
        if entry.get("id") == name:
            return dict(entry)
    raise RequestError(f"model '{name}' not found", code="not_found", field="model")


@endpoint(limit="llm", body="json", render=render_ollama)
async def show(call: Call) -> Response:
    body = await call.json()
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError("model is required", field="model")
    entry = await _alias(call, name.removesuffix(":latest"))
    capabilities = ["embedding"] if entry.get("embedding") else ["completion", "tools"]
    info: dict[str, Any] = {"general.architecture": "toolmux", "general.basename": entry["id"]}
    if entry.get("context_window"):
        info["toolmux.context_length"] = entry["context_window"]
    return call.json_response(
        {
            "license": "",
            "modelfile": f"# toolmux alias {entry['id']}\nFROM {entry['id']}\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": _DETAILS,
            "model_info": info,
            "capabilities": capabilities,
            "modified_at": _now(),
        }
    )


@endpoint(limit="llm", render=render_ollama)
async def ps(call: Call) -> Response:
    answer = await call.structured("models-list_models", {})
    until = datetime.fromtimestamp(time.time() + KEEP_ALIVE_S, UTC).isoformat().replace("+00:00", "Z")
    models = [
        {
            "name": e["id"],
            "model": e["id"],
            "size": 0,
            "digest": "",
            "details": _DETAILS,
            "expires_at": until,
            "size_vram": 0,
            "context_length": e.get("context_window", 0),
        }
        for e in answer.get("data", [])
        if not e.get("parent")
    ]
    return call.json_response({"models": models})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@endpoint(limit="llm", body="json", render=render_ollama)
async def chat(call: Call) -> Any:
    started = time.perf_counter()
    body = await call.json()
    model = _model_of(body)
    if not isinstance(body.get("messages"), list):
        raise RequestError("messages must be a list", field="messages")
    args = {"model": model, **tr.request_from_ollama(body)}
    if body.get("stream", True):
        return _stream(call, args, model, started, generate=False)
    answer = await call.structured(CHAT_TOOL, args)
    return _answer(call, tr.response_to_ollama(answer, model, started), answer, started)


@endpoint(limit="llm", body="json", render=render_ollama)
async def generate(call: Call) -> Any:
    started = time.perf_counter()
    body = await call.json()
    model = _model_of(body)
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise RequestError("prompt must be a string", field="prompt")
    messages = []
    if isinstance(body.get("system"), str) and body["system"]:
        messages.append({"role": "system", "content": body["system"]})
    messages.append({"role": "user", "content": prompt})
    args = {"model": model, **tr.request_from_ollama({**body, "messages": messages})}
    if body.get("stream", True):
        return _stream(call, args, model, started, generate=True)
    answer = await call.structured(CHAT_TOOL, args)
    chat_out = tr.response_to_ollama(answer, model, started)
    out = {k: v for k, v in chat_out.items() if k != "message"} | {"response": chat_out["message"]["content"]}
    return _answer(call, out, answer, started)


@endpoint(limit="llm", body="json", render=render_ollama)
async def embed(call: Call) -> Response:
    started = time.perf_counter()
    body = await call.json()
    model = _model_of(body)
    legacy = call.request.url.path.endswith("/embeddings")
    field = "prompt" if legacy else "input"
    raw = body.get(field)
    if not (isinstance(raw, str) or (isinstance(raw, list) and all(isinstance(x, str) for x in raw))):
        raise RequestError(f"{field} must be a string or a list of strings", field=field)
    answer = await call.structured("models-embed", {"model": model, "input": raw})
    vectors = [item["embedding"] for item in sorted(answer["data"], key=lambda d: d["index"])]
    if legacy:
        return _answer(call, {"embedding": vectors[0] if vectors else []}, answer, started)
    usage = answer.get("usage") or {}
    out = {"model": model, "embeddings": vectors, "prompt_eval_count": usage.get("prompt_tokens", 0)}
    return _answer(call, out, answer, started)


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(
        ctx,
        [
            ("GET", "/api/tags", tags),
            ("GET", "/api/version", version),
            ("POST", "/api/show", show),
            ("GET", "/api/ps", ps),
            ("POST", "/api/chat", chat),
            ("POST", "/api/generate", generate),
            ("POST", "/api/embed", embed),
            ("POST", "/api/embeddings", embed),
        ],
    )
