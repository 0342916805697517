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
the tool's error code maps to (400 bad input, 413 too large, 503 busy with Retry-After...).
Only these exact paths are mounted: the rest of /v1 belongs to other facades.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Message

from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount, render_openai
from aggregator.protocol.errors import ErrorCode, RequestError
from servers.kit import ToolError
from servers.speech.formats import CONTENT_TYPES

SERVER = "speech"
MULTIPART_OVERHEAD = 64 * 1024  # the upload's limit is the file's; the form around it may add this

TRANSCRIPTION_FORMATS = tuple(CONTENT_TYPES)
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


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
                raise RequestError("the 'file' field (the audio file) is missing", field="file", reason="missing")
            audio = await upload.read()
            items = form.multi_items()
    except (MultiPartException, HTTPException) as exc:
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        raise RequestError(f"malformed multipart body: {detail}", reason="invalid_request") from None
    fields = {k: v for k, v in items if isinstance(v, str)}
    granularities = [
        v for k, v in items if k in ("timestamp_granularities[]", "timestamp_granularities") and isinstance(v, str)
    ]
    return audio, fields, granularities


def _choice(value: Any, allowed: tuple[str, ...], param: str, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value not in allowed:
        raise RequestError(f"'{param}' must be one of: {', '.join(allowed)} (got {value!r})", field=param)
    return value


def _transcription_arguments(fields: dict[str, str], granularities: list[str], audio: bytes) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "audio_base64": binascii.b2a_base64(audio, newline=False).decode("ascii"),
        "response_format": _choice(fields.get("response_format"), TRANSCRIPTION_FORMATS, "response_format", "json"),
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
    return arguments


def _transcription_response(call: Call, structured: dict[str, Any], response_format: str) -> Response:
    media_type = CONTENT_TYPES[response_format]
    headers = {"x-request-id": call.request_id}
    if response_format in ("text", "srt", "vtt"):
        return Response(structured.get("formatted", ""), media_type=media_type, headers=headers)
    if response_format == "json":
        return Response(orjson.dumps({"text": structured["text"]}), media_type=media_type, headers=headers)
    verbose = {"task": "transcribe", **{k: structured[k] for k in ("language", "duration", "text", "model")}}
    for key in ("segments", "words"):
        if key in structured:
            verbose[key] = structured[key]
    return Response(orjson.dumps(verbose), media_type=media_type, headers=headers)


@endpoint(limit="audio_transcription", render=render_openai)
async def transcriptions(call: Call) -> Response:
    if not call.request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise RequestError("send the audio as multipart/form-data with a 'file' field", reason="invalid_request")
    limit = call.limit.max_body_bytes
    audio, fields, granularities = await _parse_upload(call.request, await call.body(limit + MULTIPART_OVERHEAD))
    if not audio:
        raise RequestError("the uploaded file is empty (0 bytes)", field="file", reason="empty_file")
    if len(audio) > limit:
        raise RequestError(f"the file is larger than {limit} bytes", code=ErrorCode.TOO_LARGE, field="file")
    arguments = _transcription_arguments(fields, granularities, audio)
    structured = await call.structured(f"{SERVER}-transcribe", arguments)
    return _transcription_response(call, structured, arguments["response_format"])


def _speech_arguments(data: dict[str, Any]) -> dict[str, Any]:
    text = data.get("input")
    if not isinstance(text, str) or not text:
        raise RequestError("'input' (the text to speak) is required", field="input", reason="missing")
    fmt = _choice(data.get("response_format"), SPEECH_FORMATS, "response_format", "mp3")
    arguments: dict[str, Any] = {"text": text, "format": fmt, "delivery": "inline"}
    for name in ("model", "voice"):
        value = data.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise RequestError(f"'{name}' must be a string", field=name, reason="invalid_type")
            arguments[name] = value
    speed = data.get("speed")
    if speed is not None:
        if isinstance(speed, bool) or not isinstance(speed, int | float):
            raise RequestError("'speed' must be a number", field="speed", reason="invalid_type")
        arguments["speed"] = speed
    return arguments


@endpoint(limit="audio_speech", body="json", render=render_openai)
async def speech(call: Call) -> Response:
    result = await call.tool(f"{SERVER}-speak", _speech_arguments(await call.json()))
    structured = result.get("structuredContent") or {}
    block = next((c for c in result.get("content", []) if c.get("type") == "audio"), None)
    if block is None or "content_type" not in structured:
        raise ToolError("speech-speak returned no audio", code=ErrorCode.UPSTREAM_ERROR)
    headers = {
        "x-request-id": call.request_id,
        "x-toolmux-voice": str(structured.get("voice", "")),
        "x-toolmux-engine": str(structured.get("engine", "")),
    }
    return Response(binascii.a2b_base64(block["data"]), media_type=str(structured["content_type"]), headers=headers)


@endpoint(limit="audio_voices", render=render_openai)
async def voices(call: Call) -> Response:
    query = call.request.query_params
    arguments = {name: query[name] for name in ("language", "engine") if query.get(name)}
    structured = await call.structured(f"{SERVER}-list_voices", arguments)
    body = {
        "object": "list",
        "data": [{"object": "voice", **v} for v in structured["voices"]],
        "default_voice": structured["default_voice"],
        "unavailable": structured["unavailable"],
    }
    return call.json_response(body)


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(
        ctx,
        [
            ("POST", "/v1/audio/transcriptions", transcriptions),
            ("POST", "/v1/audio/speech", speech),
            ("GET", "/v1/audio/voices", voices),
        ],
    )
