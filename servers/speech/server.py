"""The speech server: binds the tools in `schemas/speech.json` to `SpeechService`.

`speak` saves its audio in storage through the hub (`storage-put_object`) and answers with the
URL and a resource link. Running alone (no hub), or asked for `delivery: "inline"`, it returns
the audio in the result as an MCP audio content block instead, and says so in `note`.
"""

from __future__ import annotations

import binascii
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from servers.kit import Domain, ServerSettings, ToolContext, ToolError, ToolResult
from servers.speech.config import SpeechConfig
from servers.speech.formats import TEXT_FORMATS
from servers.speech.service import SpeechService
from servers.speech.storage_link import get_audio, object_from_url, put_audio, require_hub

INSTRUCTIONS = (
    "Speech tools. transcribe turns recorded speech into text (give a storage object, a /storage/ URL of this "
    "hub, or base64 audio; ask for srt/vtt subtitles or verbose_json timestamps). speak turns text into audio "
    "saved in storage and answers with its URL: share the URL. list_voices and list_models say what exists."
)
SOURCE_FIELDS = ("object", "url", "audio_base64")


def _b64_size(encoded: str) -> int:
    """Decoded size of base64 text, without decoding it."""
    stripped = encoded.rstrip("=\n\r ")
    return len(stripped) * 3 // 4


async def read_source(
    args: dict[str, Any], ctx: ToolContext, service: SpeechService, public_url: str | None
) -> tuple[bytes, str]:
    """The audio bytes of a transcribe call, and the field they came from."""
    given = [f for f in SOURCE_FIELDS if f in args]
    if len(given) != 1:
        raise ToolError(
            "give exactly one of 'object' ({bucket, key}), 'url' (a /storage/ URL on this hub) or 'audio_base64'",
            field=given[1] if len(given) > 1 else "audio_base64",
        )
    field = given[0]
    limit = service.config.max_audio_bytes
    if field == "audio_base64":
        encoded: str = args["audio_base64"]
        service.check_audio_size(_b64_size(encoded), field)
        try:
            return binascii.a2b_base64(encoded, strict_mode=True), field
        except (binascii.Error, ValueError):
            raise ToolError("'audio_base64' is not valid base64", field=field) from None
    hub = require_hub(ctx.hub, field)
    if field == "object":
        bucket, key = args["object"]["bucket"], args["object"]["key"]
    else:
        bucket, key = object_from_url(args["url"], public_url)
    return await get_audio(hub, bucket, key, max_bytes=limit, field=field), field


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(SpeechConfig)
    service = SpeechService(config, settings.server_dir)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.resources.run_sweeper)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                service.close()

    domain = Domain("speech", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain.service = service

    @domain.tool("transcribe")
    async def transcribe(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        audio, field = await read_source(args, ctx, service, settings.public_url)
        response_format = args.get("response_format", "json")
        try:
            with anyio.fail_after(config.timeout_seconds):
                result = await service.transcribe(
                    audio,
                    field=field,
                    model=args.get("model"),
                    language=args.get("language"),
                    response_format=response_format,
                    granularities=args.get("timestamp_granularities"),
                    diarize=args.get("diarize", "none"),
                    progress=ctx.progress,
                )
        except TimeoutError:
            raise ToolError(f"transcription took longer than {config.timeout_seconds:g} s", code="timeout") from None
        text = result["formatted"] if response_format in TEXT_FORMATS else None
        return ToolResult(structured=result, text=text)

    @domain.tool("speak")
    async def speak(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        try:
            with anyio.fail_after(config.timeout_seconds):
                speech = await service.synthesize(
                    args["text"],
                    voice=args.get("voice"),
                    model=args.get("model"),
                    speed=float(args.get("speed", 1.0)),
                    fmt=args.get("format", "mp3"),
                )
        except TimeoutError:
            raise ToolError(f"speaking took longer than {config.timeout_seconds:g} s", code="timeout") from None
        structured: dict[str, Any] = {
            "voice": speech.voice,
            "engine": speech.engine,
            "format": speech.format,
            "content_type": speech.content_type,
            "size": len(speech.audio),
            "duration": round(speech.pcm.duration, 3),
        }
        inline = args.get("delivery", "storage") == "inline"
        if inline or ctx.hub is None:
            if len(speech.audio) > config.max_inline_bytes:
                raise ToolError(
                    f"the audio is {len(speech.audio)} bytes, more than the {config.max_inline_bytes} returned "
                    "inline; use delivery 'storage'",
                    code="too_large",
                    field="delivery",
                )
            structured["delivery"] = "inline"
            if not inline:
                structured["note"] = "no hub to reach storage (this server runs alone): the audio is inline"
            block = {
                "type": "audio",
                "data": binascii.b2a_base64(speech.audio, newline=False).decode("ascii"),
                "mimeType": speech.content_type,
            }
            return ToolResult(structured=structured, content=[block])
        bucket = args.get("bucket", config.storage_bucket)
        key = args.get("key") or f"{config.storage_prefix}{uuid.uuid4().hex}.{speech.format}"
        stored = await put_audio(
            ctx.hub,
            bucket=bucket,
            key=key,
            data=speech.audio,
            content_type=speech.content_type,
            ttl_seconds=config.storage_ttl_seconds,
            metadata={"voice": speech.voice, "engine": speech.engine},
        )
        structured.update(
            delivery="storage",
            url=str(stored.get("url", "")),
            url_expires_at=stored.get("url_expires_at"),
            bucket=str(stored.get("bucket", bucket)),
            key=str(stored.get("key", key)),
        )
        content: list[dict[str, Any]] = []
        if structured["url"].startswith(("http://", "https://")):
            content.append(
                {
                    "type": "resource_link",
                    "uri": structured["url"],
                    "name": structured["key"].rsplit("/", 1)[-1],
                    "mimeType": speech.content_type,
                    "size": len(speech.audio),
                }
            )
        return ToolResult(structured=structured, content=content)

    @domain.tool("list_models")
    async def list_models(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(service.list_models)

    @domain.tool("list_voices")
    async def list_voices(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(service.list_voices, args.get("language"), args.get("engine"))

    async def health() -> dict[str, Any]:
        listing = await anyio.to_thread.run_sync(service.list_models)
        problems = {m["id"]: m["reason"] for m in listing["models"] if not m["available"]}
        ffmpeg_problem = service.ffmpeg.problem()
        return {
            "healthy": ffmpeg_problem is None and listing["default_transcription_model"] is not None,
            "details": {
                "ffmpeg": ffmpeg_problem or "ok",
                "unavailable": problems,
                "resources": service.resources.status(),
                "gpu": service.gpu.to_dict(),
            },
        }

    domain.health = health
    domain.check_complete()
    return domain
