"""Workspace files through the MCP tools: real files on disk, and every way out refused."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from tests.servers.workspaces.conftest import Env, workspaces_env
from tests.servers.workspaces.fakes import ScriptedOpenAI

pytestmark = pytest.mark.anyio


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


async def test_write_read_list_and_delete_round_trip_on_disk(env: Env) -> None:
    written = await env.ok("write_file", {"workspace": "clients/acme", "path": "in/data.csv", "text": "a,b\n1,2\n"})
    assert written == {"workspace": "clients/acme", "path": "in/data.csv", "size": 8, "created": True}
    assert (env.root / "clients" / "acme" / "in" / "data.csv").read_text() == "a,b\n1,2\n"
    again = await env.ok("write_file", {"workspace": "clients/acme", "path": "in/data.csv", "text": "x"})
    assert again["created"] is False

    blob = bytes(range(256))
    await env.ok(
        "write_file", {"workspace": "clients/acme", "path": "raw.bin", "base64": base64.b64encode(blob).decode()}
    )
    binary = await env.ok("read_file", {"workspace": "clients/acme", "path": "raw.bin"})
    assert binary["encoding"] == "base64" and base64.b64decode(binary["base64"]) == blob and binary["size"] == 256
    text = await env.ok("read_file", {"workspace": "clients/acme", "path": "in/data.csv"})
    assert text["encoding"] == "text" and text["text"] == "x"

    top = await env.ok("list_files", {"workspace": "clients/acme"})
    assert [(e["path"], e["type"]) for e in top["entries"]] == [("in", "directory"), ("raw.bin", "file")]
    everything = await env.ok("list_files", {"workspace": "clients/acme", "recursive": True})
    assert [e["path"] for e in everything["entries"]] == ["in", "in/data.csv", "raw.bin"]

    refused = await env.error("delete_file", {"workspace": "clients/acme", "path": "in"})
    assert refused.code == "conflict" and refused.field == "recursive"
    deleted = await env.ok("delete_file", {"workspace": "clients/acme", "path": "in", "recursive": True})
    assert deleted["deleted"] == "directory" and not (env.root / "clients" / "acme" / "in").exists()
    listed = await env.ok("list_workspaces", {})
    assert listed["workspaces"] == [{"name": "clients/acme", "busy": False, "run_id": None}]


async def test_writes_are_atomic_and_leave_no_temporary_files(env: Env) -> None:
    for size in (10, 100_000, 5):
        await env.ok("write_file", {"workspace": "atomic", "path": "f.txt", "text": "x" * size})
    assert os.listdir(env.root / "atomic") == ["f.txt"] and (env.root / "atomic" / "f.txt").read_text() == "xxxxx"


async def test_make_parents_false_and_overwrite_false_are_honoured(env: Env) -> None:
    error = await env.error(
        "write_file", {"workspace": "opts", "path": "missing/dir/f.txt", "text": "x", "make_parents": False}
    )
    assert error.code == "not_found"
    await env.ok("write_file", {"workspace": "opts", "path": "f.txt", "text": "one"})
    error = await env.error("write_file", {"workspace": "opts", "path": "f.txt", "text": "two", "overwrite": False})
    assert error.code == "conflict" and (env.root / "opts" / "f.txt").read_text() == "one"


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "~/x", "a/./../../x", "ok/\x00bad"],
)
async def test_traversal_and_absolute_paths_are_refused_and_nothing_is_written_outside(env: Env, path: str) -> None:
    await env.ok("write_file", {"workspace": "safe", "path": "keep.txt", "text": "keep"})
    outside_before = snapshot(env.data_dir)
    for tool, extra in (("write_file", {"text": "pwned"}), ("read_file", {}), ("delete_file", {})):
        error = await env.error(tool, {"workspace": "safe", "path": path, **extra})
        assert error.code == "invalid_argument" and error.field == "path", (tool, error.message)
    assert snapshot(env.data_dir) == outside_before


async def test_symlinks_leading_outside_are_refused_and_inside_ones_work(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    await env.ok("write_file", {"workspace": "links", "path": "real/inner.txt", "text": "inner"})
    ws = env.root / "links"
    (ws / "to_secret").symlink_to(secret)
    (ws / "to_outside").symlink_to(outside_dir)
    (ws / "to_real").symlink_to("real")

    for tool, args in (
        ("read_file", {"path": "to_secret"}),
        ("write_file", {"path": "to_outside/planted.txt", "text": "x"}),
        ("list_files", {"path": "to_outside"}),
        ("read_file", {"path": "to_outside/../secret.txt"}),
    ):
        error = await env.error(tool, {"workspace": "links", **args})
        assert error.code in ("forbidden", "invalid_argument") and error.field == "path", (tool, error.message)
    assert list(outside_dir.iterdir()) == [] and secret.read_text() == "do not read"

    inside = await env.ok("read_file", {"workspace": "links", "path": "to_real/inner.txt"})
    assert inside["text"] == "inner" and inside["path"] == "to_real/inner.txt"
    # Replacing a link to a secret replaces the link, not the secret's content.
    await env.ok("write_file", {"workspace": "links", "path": "to_secret", "text": "new"})
    assert secret.read_text() == "do not read" and (ws / "to_secret").read_text() == "new"
    (ws / "to_secret2").symlink_to(secret)
    deleted = await env.ok("delete_file", {"workspace": "links", "path": "to_secret2"})
    assert deleted["deleted"] == "symlink" and secret.exists()
    listing = await env.ok("list_files", {"workspace": "links"})
    assert {e["path"]: e["type"] for e in listing["entries"]}["to_outside"] == "symlink"


async def test_a_link_planted_at_a_workspace_path_is_not_followed(env: Env, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    await env.ok("write_file", {"workspace": "first", "path": "a.txt", "text": "a"})
    (env.root / "planted").symlink_to(outside)
    error = await env.error("write_file", {"workspace": "planted", "path": "x.txt", "text": "x"})
    assert error.field == "workspace" and error.code == "forbidden"
    assert list(outside.iterdir()) == []


async def test_oversized_files_are_refused_on_write_and_read(tmp_path: Path, fake: ScriptedOpenAI) -> None:
    async with workspaces_env(tmp_path, fake, max_file_bytes=2048) as env:
        error = await env.error("write_file", {"workspace": "big", "path": "big.txt", "text": "x" * 3000})
        assert error.code == "too_large" and "2048" in error.message
        assert not (env.root / "big").exists()  # refused before the workspace was even created
        await env.ok("write_file", {"workspace": "big", "path": "small.txt", "text": "x"})
        (env.root / "big" / "grown.txt").write_bytes(b"y" * 5000)
        error = await env.error("read_file", {"workspace": "big", "path": "grown.txt"})
        assert error.code == "too_large" and error.field == "path"


async def test_bad_workspace_names_are_refused_naming_the_field(env: Env) -> None:
    for name in ("..", "a/../b", "/abs", "a//b", ".hidden", "x" * 65, "a/" * 8 + "a"):
        error = await env.error("write_file", {"workspace": name, "path": "f", "text": "x"})
        assert error.field == "workspace" and error.code == "invalid_argument", name
    assert snapshot(env.data_dir) == {}


async def test_workspaces_cannot_nest(env: Env) -> None:
    await env.ok("write_file", {"workspace": "clients/acme", "path": "f", "text": "x"})
    for name in ("clients", "clients/acme/inner"):
        error = await env.error("write_file", {"workspace": name, "path": "f", "text": "x"})
        assert error.code == "conflict" and "nest" in error.message
    await env.ok("write_file", {"workspace": "clients/other", "path": "f", "text": "x"})


async def test_missing_workspace_and_missing_file_are_not_found(env: Env) -> None:
    error = await env.error("read_file", {"workspace": "nowhere", "path": "f"})
    assert error.code == "not_found" and error.field == "workspace"
    await env.ok("write_file", {"workspace": "somewhere", "path": "f", "text": "x"})
    error = await env.error("read_file", {"workspace": "somewhere", "path": "g"})
    assert error.code == "not_found" and error.field == "path"
    error = await env.error("read_file", {"workspace": "somewhere", "path": "."})
    assert error.field == "path"
