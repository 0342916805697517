"""OpenAI's audio routes, translated onto the speech server's tools.

    POST /v1/audio/transcriptions   multipart: file, model, language, response_format,
                                    timestamp_granularities[] (+ toolmux's `diarize=channels`)
                                    → speech-transcribe; answered as JSON, text/plain,
                                    application/x-subrip or text/vtt as the format asks
    POST /v1/audio/speech           JSON: model, input, voice, response_format, speed
                                    → speech-speak (delivery "inline"); answered with the audio bytes
    GET  /v1/audio/voices           → speech-list_voices

`/v1/audio/speech` asks the tool for the audio inline rather than via storage: the bytes come
straight back in the tool result (no object written and read back, nothing left behind), and
a key scoped to speech tools alone works without storage rights. MCP callers of `speak` still
get storage URLs by default.

Errors are OpenAI-shaped: `{"error": {"message", "type", "param", "code"}}` with the status
the tool's error code maps to (400 bad input, 413 too large, 409 busy with Retry-After...).
Only these exact paths are mounted: the rest of /v1 belongs to other facades.
"""

from __future__ import annotations

import binascii
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message

from aggregator.facade.base import FacadeContext, FacadeHTTPError, request_id_of
from aggregator.facade.common import Handler, call_tool, guarded_endpoint, json_object, read_capped, structured_of
from aggregator.principal import Principal
from servers.kit import ToolError
from servers.speech.formats import CONTENT_TYPES

SERVER = "speech"
MiB = 1024 * 1024
# OpenAI's upload limit is 25 MB; the speech server enforces its own configured limit too.
MAX_UPLOAD_BYTES = 25 * MiB
MULTIPART_OVERHEAD = 64 * 1024
MAX_JSON_BYTES = 1 * MiB
TOO_LARGE = "request body larger than {limit} bytes"
CALL_TIMEOUT_SECONDS = 900.0
LIST_TIMEOUT_SECONDS = 30.0

TRANSCRIPTION_FORMATS = tuple(CONTENT_TYPES)
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")

# OpenAI's error `type` per status (its SDKs pick the exception class from the status alone).
ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": field, "code": code}}
    all_headers = {"x-request-id": request_id} if request_id else {}
    all_headers.update(headers or {})
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=all_headers)


def _replaying(request: Request, body: bytes) -> Request:
    """A request whose body is `body` (already read and size-checked), for Starlette's form parser."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def _parse_upload(request: Request, body: bytes) -> tuple[bytes, dict[str, str], list[str]]:
    """`(file bytes, text fields, timestamp_granularities[])` of a transcription upload."""
    try:
        async with _replaying(request, body).form(max_files=1, max_fields=32, max_part_size=64 * 1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise FacadeHTTPError(400, "the 'file' field (the audio file) is missing", code="missing", param="file")
            audio = await upload.read()
            items = form.multi_items()
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        raise FacadeHTTPError(400, f"malformed multipart body: {detail}", code="invalid_request") from None
    fields = {k: v for k, v in items if isinstance(v, str)}
    granularities = [
        v for k, v in items if k in ("timestamp_granularities[]", "timestamp_granularities") and isinstance(v, str)
    ]
    return audio, fields, granularities


def _choice(value: Any, allowed: tuple[str, ...], param: str, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in allowed:
        raise FacadeHTTPError(
            400, f"'{param}' must be one of: {', '.join(allowed)} (got {value!r})", code="invalid_value", param=param
        )
    return value


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    async def call(principal: Principal, request: Request, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await call_tool(ctx, principal, request, f"{SERVER}-{tool}", arguments)

    def endpoint(handler: Handler, timeout: float) -> Callable[[Request], Awaitable[Response]]:
        async def stamped(principal: Principal, request: Request) -> Response:
            response = await handler(principal, request)
            response.headers["x-request-id"] = request_id_of(request)
            return response

        return guarded_endpoint(ctx, stamped, timeout, render=openai_error)

    async def transcriptions(principal: Principal, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise FacadeHTTPError(
                400, "send the audio as multipart/form-data with a 'file' field", code="invalid_request"
            )
        body = await read_capped(request, MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD, too_large=TOO_LARGE)
        audio, fields, granularities = await _parse_upload(request, body)
        if not audio:
            raise FacadeHTTPError(400, "the uploaded file is empty (0 bytes)", code="empty_file", param="file")
        if len(audio) > MAX_UPLOAD_BYTES:
            raise FacadeHTTPError(
                413, f"the file is larger than {MAX_UPLOAD_BYTES} bytes", code="too_large", param="file"
            )
        response_format = _choice(fields.get("response_format"), TRANSCRIPTION_FORMATS, "response_format", "json")
        arguments: dict[str, Any] = {
            "audio_base64": binascii.b2a_base64(audio, newline=False).decode("ascii"),
            "response_format": response_format,
        }
        for name in ("model", "language"):
            if fields.get(name):
                arguments[name] = fields[name]
        if granularities:
            for value in granularities:
                _choice(value, ("segment", "word"), "timestamp_granularities[]", "segment")
            arguments["timestamp_granularities"] = sorted(set(granularities))
        if fields.get("diarize"):
            arguments["diarize"] = _choice(fields["diarize"], ("none", "channels"), "diarize", "none")
        structured = structured_of(await call(principal, request, "transcribe", arguments), "speech-transcribe")
        media_type = CONTENT_TYPES[response_format]
        if response_format in ("text", "srt", "vtt"):
            return Response(structured.get("formatted", ""), media_type=media_type)
        if response_format == "json":
            return Response(orjson.dumps({"text": structured["text"]}), media_type=media_type)
        verbose = {
            "task": "transcribe",
            "language": structured["language"],
            "duration": structured["duration"],
            "text": structured["text"],
            "model": structured["model"],
        }
        for key in ("segments", "words"):
            if key in structured:
                verbose[key] = structured[key]
        return Response(orjson.dumps(verbose), media_type=media_type)

    async def speech(principal: Principal, request: Request) -> Response:
        raw = await read_capped(request, MAX_JSON_BYTES, too_large=TOO_LARGE)
        data = json_object(raw, not_object="body must be a JSON object", code="invalid_json")
        text = data.get("input")
        if not isinstance(text, str) or not text:
            raise FacadeHTTPError(400, "'input' (the text to speak) is required", code="missing", param="input")
        fmt = _choice(data.get("response_format"), SPEECH_FORMATS, "response_format", "mp3")
        arguments: dict[str, Any] = {"text": text, "format": fmt, "delivery": "inline"}
        for name in ("model", "voice"):
            value = data.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise FacadeHTTPError(400, f"'{name}' must be a string", code="invalid_type", param=name)
                arguments[name] = value
        speed = data.get("speed")
        if speed is not None:
            if isinstance(speed, bool) or not isinstance(speed, int | float):
                raise FacadeHTTPError(400, "'speed' must be a number", code="invalid_type", param="speed")
            arguments["speed"] = speed
        result = await call(principal, request, "speak", arguments)
        structured = structured_of(result, "speech-speak")
        block = next((c for c in result.get("content", []) if c.get("type") == "audio"), None)
        if block is None:
            raise ToolError("speech-speak returned no audio", code="upstream_error")
        audio = binascii.a2b_base64(block["data"])
        headers = {
            "x-toolmux-voice": str(structured.get("voice", "")),
            "x-toolmux-engine": str(structured.get("engine", "")),
        }
        return Response(audio, media_type=str(structured["content_type"]), headers=headers)

    async def voices(principal: Principal, request: Request) -> Response:
        arguments: dict[str, Any] = {}
        for name in ("language", "engine"):
            if request.query_params.get(name):
                arguments[name] = request.query_params[name]
        structured = structured_of(await call(principal, request, "list_voices", arguments), "speech-list_voices")
        body = {
            "object": "list",
            "data": [{"object": "voice", **v} for v in structured["voices"]],
            "default_voice": structured["default_voice"],
            "unavailable": structured["unavailable"],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return [
        Route("/v1/audio/transcriptions", endpoint(transcriptions, CALL_TIMEOUT_SECONDS), methods=["POST"]),
        Route("/v1/audio/speech", endpoint(speech, CALL_TIMEOUT_SECONDS), methods=["POST"]),
        Route("/v1/audio/voices", endpoint(voices, LIST_TIMEOUT_SECONDS), methods=["GET"]),
    ]
