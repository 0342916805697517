"""The storage server's MCP tools, bound to `schemas/storage.json`.

MCP callers may act on any bucket: which callers reach these tools at all is the hub's key
scopes' business. Bucket keys guard the HTTP/S3 face (`servers/storage/http/`). URLs a tool
answers with are bound to the calling hub key (`ctx.caller`) and die with it.
"""

from __future__ import annotations

import binascii
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from servers.kit import Domain, ServerSettings, ToolContext, ToolError, ToolResult
from servers.kit.domain import FACE_METHOD
from servers.storage.answers import (
    iso,
    listing_answer,
    object_info,
    presigned_answer,
    record_fields,
    stored_object,
)
from servers.storage.config import StorageConfig
from servers.storage.http.child import ChildFace
from servers.storage.http.hooks import MASTER_NAME
from servers.storage.metadata import ObjectRecord
from servers.storage.presign import clamp_expiry
from servers.storage.service import StorageService
from servers.storage.sniff import is_textual

INSTRUCTIONS = (
    "Object storage. Save results with put_object and share the returned `url` instead of pasting "
    "large or binary content. Read with get_object (text, or base64 for binary), find objects with "
    "list_objects (prefix, delimiter '/'), and make download or upload links with presign_url."
)


def resource_link(url: str, record: ObjectRecord) -> list[dict[str, Any]]:
    """A resource_link block for a binary object (only for absolute URLs: clients parse the URI)."""
    if not url.startswith(("http://", "https://")):
        return []
    name = record.key.rsplit("/", 1)[-1] or record.key
    return [{"type": "resource_link", "uri": url, "name": name, "mimeType": record.content_type, "size": record.size}]


def _content(args: dict[str, Any]) -> bytes:
    has_text, has_base64 = "text" in args, "base64" in args
    if has_text == has_base64:
        raise ToolError("give exactly one of 'text' or 'base64'", field="text" if not has_text else "base64")
    if has_text:
        return str(args["text"]).encode("utf-8")
    try:
        return binascii.a2b_base64(args["base64"], strict_mode=True)
    except (binascii.Error, ValueError):
        raise ToolError("'base64' is not valid base64", field="base64") from None


def minter_of(ctx: ToolContext) -> str:
    # The hub names the calling key on every call; a caller-less call comes from the operator's
    # own process (a standalone server, a test), which holds the master key.
    return ctx.caller or MASTER_NAME


def build_service(config: StorageConfig, settings: ServerSettings) -> StorageService:
    """Embedded: metadata in SQLite, locks in this process. With the hub's `state:` naming PostgreSQL:
    metadata there and locks across replicas, objects under `root` (a directory all replicas share)."""
    from pathlib import Path

    root = Path(config.root) if config.root else settings.server_dir
    state = settings.state
    if state is None or state.config.postgres is None:
        return StorageService(config, root, public_url=settings.public_url)
    from servers.storage.locks import KeyLocks
    from servers.storage.pg_metadata import PostgresMetadata, open_pool
    from servers.storage.shared_locks import SharedKeyLocks

    url, schema = state.config.postgres, state.config.schema_name
    metadata = PostgresMetadata(open_pool(url, schema, state.config.pool_size))
    # Lock holders keep a connection each while they hold or wait: a pool of their own, so they
    # never starve the metadata queries the holders need to finish.
    lock_pool = open_pool(url, schema, config.lock_max_waiters + 1)
    local = KeyLocks(timeout=config.lock_timeout_seconds, max_waiters=config.lock_max_waiters)
    service = StorageService(
        config,
        root,
        public_url=settings.public_url,
        metadata=metadata,
        locks=SharedKeyLocks(local, lock_pool),
        shared=True,
    )
    service.on_close.append(lock_pool.close)
    return service


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(StorageConfig)
    service = build_service(config, settings)

    child_face = ChildFace(service)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.sweeper.run)
            child_face.task_group = tg
            yield
            tg.cancel_scope.cancel()
        child_face.close()

    domain = Domain("storage", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain.service = service
    # When storage runs as the hub's child, the hub asks for the HTTP/S3 face's socket with this
    # request and forwards /storage/ requests there (see servers/storage/http/child.py).
    domain.add_request(FACE_METHOD, child_face.endpoint)

    @domain.tool("put_object")
    async def put_object(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        data = _content(args)
        record = await service.put(
            args["bucket"],
            args["key"],
            data,
            content_type=args.get("content_type"),
            metadata=args.get("metadata"),
            ttl_seconds=args.get("ttl_seconds"),
        )
        structured = stored_object(service, record, minter_of(ctx))
        binary = not is_textual(record.content_type)
        return ToolResult(structured=structured, content=resource_link(structured["url"], record) if binary else [])

    @domain.tool("get_object")
    async def get_object(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        limit = min(args.get("max_bytes") or config.max_inline_bytes, config.max_inline_bytes)
        record, data = await service.read(args["bucket"], args["key"], limit)
        wanted = args.get("encoding", "auto")
        text: str | None = None
        if wanted != "base64":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                if wanted == "text":
                    raise ToolError(
                        "the object is not valid UTF-8 text; ask for encoding 'base64'", field="encoding"
                    ) from None
        url, _ = service.url(record.bucket, record.key, minter=minter_of(ctx))
        structured: dict[str, Any] = {**record_fields(record), "last_modified": iso(record.modified), "url": url}
        if text is not None:
            structured.update(encoding="text", text=text)
            return ToolResult(structured=structured)
        structured.update(encoding="base64", base64=binascii.b2a_base64(data, newline=False).decode("ascii"))
        return ToolResult(structured=structured, content=resource_link(url, record))

    @domain.tool("head_object")
    async def head_object(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return object_info(await service.head(args["bucket"], args["key"]))

    @domain.tool("list_objects")
    async def list_objects(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        prefix, delimiter = args.get("prefix", ""), args.get("delimiter", "")
        listing = await service.list(
            args["bucket"],
            prefix=prefix,
            delimiter=delimiter,
            max_keys=args.get("max_keys", 100),
            continuation_token=args.get("continuation_token"),
        )
        return listing_answer(args["bucket"], prefix, delimiter, listing)

    @domain.tool("delete_object")
    async def delete_object(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        deleted = await service.delete(args["bucket"], args["key"])
        return {"bucket": args["bucket"], "key": args["key"], "deleted": deleted}

    @domain.tool("list_buckets")
    async def list_buckets(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        stats = await service.bucket_stats()
        return {
            "buckets": [
                {
                    "name": b.name,
                    "visibility": b.visibility,
                    "max_object_size": b.max_object_size,
                    "ttl_seconds": b.ttl_seconds,
                    "objects": stats.get(b.name, (0, 0))[0],
                    "bytes": stats.get(b.name, (0, 0))[1],
                }
                for b in service.buckets.values()
            ]
        }

    @domain.tool("presign_url")
    async def presign_url(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        method = args.get("method", "GET")
        bucket = service.bucket(args["bucket"])
        if method == "GET":
            await service.head(bucket.name, args["key"])  # a link to nothing helps nobody
        expires_in = clamp_expiry(args.get("expires_in", 3600))
        url, expires_at = service.url(
            bucket.name, args["key"], minter=minter_of(ctx), method=method, expires_in=expires_in
        )
        return presigned_answer(url, method, expires_in, expires_at)

    async def health() -> dict[str, Any]:
        try:
            stats = await service.bucket_stats()
        except Exception as exc:
            return {"healthy": False, "details": {"metadata": f"unreadable: {type(exc).__name__}"}}
        return {
            "healthy": True,
            "details": {"buckets": len(service.buckets), "objects": sum(n for n, _ in stats.values())},
        }

    domain.health = health
    domain.check_complete()
    return domain
