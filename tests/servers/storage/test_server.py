"""The storage MCP tools, through a real MCP session (in process and as a stdio child)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from servers.kit import ToolContext, error_from_result
from tests.support.storage import FakeClock, make_domain

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
PUBLIC_URL = "https://hub.example"


async def call(domain: Any, tool: str, **args: Any) -> dict[str, Any]:
    return await domain.call(tool, args, ToolContext(tool=tool, request_id="t-1"))


async def test_tools_carry_output_schemas_and_honest_annotations(tmp_path: Path) -> None:
    domain = make_domain(tmp_path)
    async with Client(domain.build_server(), mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {
        "put_object",
        "get_object",
        "head_object",
        "list_objects",
        "delete_object",
        "list_buckets",
        "presign_url",
    }
    assert all(t.output_schema is not None for t in tools.values())
    assert tools["get_object"].annotations.read_only_hint is True
    assert tools["delete_object"].annotations.destructive_hint is True


async def test_text_and_binary_round_trip_over_an_mcp_session_with_resource_links(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, public_url=PUBLIC_URL)
    async with Client(domain.build_server(), mode="legacy") as client:
        put_text = await client.call_tool("put_object", {"bucket": "default", "key": "notes/a.md", "text": "# hi"})
        assert put_text.structured_content["content_type"] == "text/markdown; charset=utf-8"
        assert put_text.structured_content["url"].startswith(f"{PUBLIC_URL}/storage/default/notes/a.md?")
        assert [c.type for c in put_text.content] == ["text"]

        encoded = base64.b64encode(PNG).decode()
        put_png = await client.call_tool("put_object", {"bucket": "uploads", "key": "shot.png", "base64": encoded})
        assert put_png.structured_content["content_type"] == "image/png"
        assert put_png.structured_content["url"] == f"{PUBLIC_URL}/storage/uploads/shot.png"
        assert put_png.structured_content["url_expires_at"] is None
        link = put_png.content[1]
        assert link.type == "resource_link" and str(link.uri) == f"{PUBLIC_URL}/storage/uploads/shot.png"
        assert link.mime_type == "image/png"

        got_text = await client.call_tool("get_object", {"bucket": "default", "key": "notes/a.md"})
        assert got_text.structured_content["encoding"] == "text"
        assert got_text.structured_content["text"] == "# hi"
        got_png = await client.call_tool("get_object", {"bucket": "uploads", "key": "shot.png"})
        assert got_png.structured_content["encoding"] == "base64"
        assert base64.b64decode(got_png.structured_content["base64"]) == PNG
        assert any(c.type == "resource_link" for c in got_png.content)

        empty = await client.call_tool("put_object", {"bucket": "default", "key": "empty", "text": ""})
        assert empty.structured_content["size"] == 0
        head = await client.call_tool("head_object", {"bucket": "default", "key": "empty"})
        assert head.structured_content["etag"] == "d41d8cd98f00b204e9800998ecf8427e"


async def test_bad_arguments_get_errors_naming_the_field(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, {"max_inline_bytes": 100})
    cases = [
        ({"bucket": "default", "key": "k"}, "put_object", "text"),
        ({"bucket": "default", "key": "k", "text": "a", "base64": "YQ=="}, "put_object", "base64"),
        ({"bucket": "default", "key": "k", "base64": "not base64!"}, "put_object", "base64"),
        ({"bucket": "default", "key": "../k", "text": "a"}, "put_object", "key"),
        ({"bucket": "nope", "key": "k", "text": "a"}, "put_object", "bucket"),
    ]
    for args, tool, field in cases:
        error = error_from_result(await call(domain, tool, **args))
        assert error is not None and error.field == field, (args, error)

    await call(domain, "put_object", bucket="default", key="bin", base64=base64.b64encode(PNG).decode())
    error = error_from_result(await call(domain, "get_object", bucket="default", key="bin"))
    assert error is not None and error.code == "too_large" and "presign_url" in error.message
    await call(domain, "put_object", bucket="default", key="small.bin", base64="AAH+/w==")
    error = error_from_result(await call(domain, "get_object", bucket="default", key="small.bin", encoding="text"))
    assert error is not None and error.field == "encoding"
    missing = error_from_result(await call(domain, "head_object", bucket="default", key="missing"))
    assert missing is not None and missing.code == "not_found"


async def test_listing_deleting_buckets_and_presigning_through_tools(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, public_url=PUBLIC_URL)
    for name in ["r/1.txt", "r/2.txt", "r/sub/3.txt", "top.txt"]:
        await call(domain, "put_object", bucket="default", key=name, text=name)

    first = (await call(domain, "list_objects", bucket="default", prefix="r/", delimiter="/", max_keys=2))[
        "structuredContent"
    ]
    assert [o["key"] for o in first["objects"]] == ["r/1.txt", "r/2.txt"] and first["is_truncated"]
    second = (
        await call(
            domain,
            "list_objects",
            bucket="default",
            prefix="r/",
            delimiter="/",
            continuation_token=first["next_continuation_token"],
        )
    )["structuredContent"]
    assert second["objects"] == [] and second["common_prefixes"] == ["r/sub/"] and not second["is_truncated"]

    buckets = (await call(domain, "list_buckets"))["structuredContent"]["buckets"]
    assert {b["name"]: (b["visibility"], b["objects"]) for b in buckets} == {
        "default": ("private", 4),
        "uploads": ("public-read", 0),
    }

    presigned = (await call(domain, "presign_url", bucket="default", key="top.txt", expires_in=10**8))[
        "structuredContent"
    ]
    assert presigned["expires_in"] == 604800 and not presigned["public"]
    assert "X-Toolmux-Signature=" in presigned["url"]
    upload = (await call(domain, "presign_url", bucket="default", key="new.txt", method="PUT"))["structuredContent"]
    assert upload["method"] == "PUT" and upload["expires_in"] == 3600
    missing = error_from_result(await call(domain, "presign_url", bucket="default", key="nothing-here"))
    assert missing is not None and missing.code == "not_found"

    deleted = (await call(domain, "delete_object", bucket="default", key="top.txt"))["structuredContent"]
    again = (await call(domain, "delete_object", bucket="default", key="top.txt"))["structuredContent"]
    assert deleted["deleted"] is True and again["deleted"] is False


async def test_the_domain_lifespan_runs_the_ttl_sweeper(tmp_path: Path) -> None:
    clock = FakeClock()
    domain = make_domain(tmp_path, clock=clock)
    async with Client(domain.build_server(), mode="legacy") as client:
        result = await client.call_tool("put_object", {"bucket": "default", "key": "t", "text": "x", "ttl_seconds": 5})
        assert result.structured_content["expires_at"] is not None
        clock.advance(6)
        with anyio.fail_after(5):
            # A sweep may already be under way from before the clock moved: wait for the one after.
            while [p for p in (tmp_path / "storage" / "objects").rglob("*") if p.is_file()]:
                await domain.service.sweeper.wait_for_sweep()
        bucket = (await client.call_tool("list_buckets", {})).structured_content["buckets"][0]
        assert bucket["objects"] == 0


async def test_toolmux_server_storage_runs_as_a_stdio_child(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "aggregator", "server", "storage", "--stdio", "--data-dir", str(tmp_path)],
    )
    with anyio.fail_after(30):
        async with Client(params, mode="legacy") as client:
            put = await client.call_tool("put_object", {"bucket": "default", "key": "hello.txt", "text": "über"})
            assert put.structured_content["size"] == len("über".encode())
            got = await client.call_tool("get_object", {"bucket": "default", "key": "hello.txt"})
            assert got.structured_content["text"] == "über"
    assert (tmp_path / "storage" / "metadata.sqlite3").exists()
