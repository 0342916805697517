"""The storage service: durable objects, listings, expiry, recovery, config, as users of any face see them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from servers.kit import ServerConfigError, ToolError
from servers.storage.service import StorageService
from tests.support.storage import FakeClock, make_domain, make_service

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def service_in(tmp_path: Path, config: dict | None = None, clock: FakeClock | None = None) -> StorageService:
    return make_service(tmp_path, config, clock=clock)


def tree(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file())


async def test_text_binary_empty_and_multi_megabyte_objects_round_trip(tmp_path: Path) -> None:
    service = service_in(tmp_path)
    big = os.urandom(3 * 1024 * 1024 + 17)
    for key, data in [("a.txt", "héllo".encode()), ("b.bin", bytes(range(256))), ("empty", b""), ("big", big)]:
        record = await service.put("default", key, data)
        assert record.size == len(data)
        assert record.etag == hashlib.md5(data).hexdigest()
        got, body = await service.read("default", key, 8 * 1024 * 1024)
        assert body == data and got.etag == record.etag


@pytest.mark.parametrize(
    ("key", "data", "expected"),
    [
        ("pic", PNG, "image/png"),
        ("doc", b"%PDF-1.7\n...", "application/pdf"),
        ("speech", b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
        ("data.json", b'{"a": 1}', "application/json; charset=utf-8"),
        ("notes.md", b"# title\n", "text/markdown; charset=utf-8"),
        ("page", b"<!DOCTYPE html><html></html>", "text/html; charset=utf-8"),
        ("plain", "naïve text".encode(), "text/plain; charset=utf-8"),
        ("blob", b"\x00\x01\x02\x03\xfe\xff", "application/octet-stream"),
    ],
)
async def test_content_type_is_detected_from_the_bytes(tmp_path: Path, key: str, data: bytes, expected: str) -> None:
    record = await service_in(tmp_path).put("default", key, data)
    assert record.content_type == expected


async def test_a_given_content_type_wins_over_detection(tmp_path: Path) -> None:
    record = await service_in(tmp_path).put("default", "x", PNG, content_type="application/x-custom")
    assert record.content_type == "application/x-custom"


async def test_overwrite_replaces_the_object_and_frees_the_old_version(tmp_path: Path) -> None:
    service = service_in(tmp_path)
    await service.put("default", "k", b"first version")
    await service.put("default", "k", b"second")
    _, body = await service.read("default", "k", 1024)
    assert body == b"second"
    assert len(stored_files(tmp_path / "storage")) == 1


async def test_listing_filters_by_prefix_groups_by_delimiter_and_pages(tmp_path: Path) -> None:
    service = service_in(tmp_path)
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/y", "e"]
    for key in keys:
        await service.put("default", key, key.encode())

    top = await service.list("default", delimiter="/")
    assert [r.key for r in top.objects] == ["c", "e"]
    assert top.common_prefixes == ["a/", "b/", "d/"]

    inside = await service.list("default", prefix="a/", delimiter="/")
    assert [r.key for r in inside.objects] == ["a/1", "a/2"] and inside.common_prefixes == ["a/b/"]

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await service.list("default", delimiter="/", max_keys=2, continuation_token=token)
        seen += [r.key for r in page.objects] + page.common_prefixes
        pages += 1
        if not page.is_truncated:
            break
        token = page.next_token
    assert sorted(seen) == ["a/", "b/", "c", "d/", "e"] and pages == 3

    flat = await service.list("default", max_keys=1000)
    assert [r.key for r in flat.objects] == sorted(keys) and not flat.is_truncated


async def test_a_forged_continuation_token_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as caught:
        await service_in(tmp_path).list("default", continuation_token="%%%not-base64")
    assert caught.value.field == "continuation_token"


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../etc/passwd", "/etc/passwd", "..", "a/./b", "nul\x00byte", "..\\..\\win", "C:\\x", "ctl\x07"],
)
async def test_traversal_shaped_keys_are_refused_and_nothing_is_written(tmp_path: Path, key: str) -> None:
    service = service_in(tmp_path / "data")
    before = tree(tmp_path)
    with pytest.raises(ToolError) as caught:
        await service.put("default", key, b"x")
    assert caught.value.code == "invalid_argument" and caught.value.field == "key"
    assert tree(tmp_path) == before


async def test_an_object_over_the_bucket_limit_is_refused_naming_the_limit_and_leaves_nothing(tmp_path: Path) -> None:
    service = service_in(tmp_path, {"buckets": [{"name": "small", "max_object_size": 1000}]})
    with pytest.raises(ToolError) as caught:
        await service.put("small", "k", b"x" * 1001)
    assert caught.value.code == "too_large" and "1000 bytes" in caught.value.message
    assert not list((tmp_path / "storage" / "tmp").iterdir()) and not stored_files(tmp_path / "storage")
    assert (await service.put("small", "k", b"x" * 1000)).size == 1000


async def test_a_write_that_fails_midway_leaves_the_previous_version_intact(tmp_path: Path) -> None:
    service = service_in(tmp_path)
    await service.put("default", "k", b"good old version")

    async def dying_source() -> AsyncIterator[bytes]:
        yield b"partial new bytes"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await service.put("default", "k", dying_source())
    _, body = await service.read("default", "k", 1024)
    assert body == b"good old version"
    assert not list((tmp_path / "storage" / "tmp").iterdir())


async def test_leftovers_of_a_crash_are_removed_on_start_and_live_objects_kept(tmp_path: Path) -> None:
    service = service_in(tmp_path)
    await service.put("default", "kept", b"keep me")
    service.close()
    root = tmp_path / "storage"
    (root / "tmp" / "torn.part").write_bytes(b"half a write")
    orphan = root / "objects" / "default" / "ff" / "ff00"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"renamed but never committed")

    restarted = service_in(tmp_path)
    assert not (root / "tmp" / "torn.part").exists() and not orphan.exists()
    _, body = await restarted.read("default", "kept", 1024)
    assert body == b"keep me"


async def test_ttl_hides_an_object_when_due_and_the_sweep_reclaims_it(tmp_path: Path) -> None:
    clock = FakeClock()
    service = service_in(tmp_path, {"buckets": [{"name": "scratch", "ttl_seconds": 60}]}, clock)
    await service.put("scratch", "k", b"short-lived")
    clock.advance(59)
    assert (await service.head("scratch", "k")).size == 11
    clock.advance(2)
    with pytest.raises(ToolError) as caught:
        await service.head("scratch", "k")
    assert caught.value.code == "not_found"
    assert (await service.list("scratch")).objects == []
    assert await service.sweep_expired() == 1
    assert not stored_files(tmp_path / "storage")


async def test_overwriting_re_arms_the_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    service = service_in(tmp_path, {"buckets": [{"name": "scratch", "ttl_seconds": 60}]}, clock)
    await service.put("scratch", "k", b"v1")
    clock.advance(50)
    await service.put("scratch", "k", b"v2")
    clock.advance(50)  # 100 s after the first write, 50 s after the second
    assert await service.sweep_expired() == 0
    assert (await service.read("scratch", "k", 10))[1] == b"v2"
    clock.advance(11)
    assert await service.sweep_expired() == 1


async def test_the_background_sweeper_wakes_for_an_earlier_expiry_and_deletes(tmp_path: Path) -> None:
    clock = FakeClock()
    service = service_in(tmp_path, {"sweep_interval_seconds": 3600}, clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(service.sweeper.run)
        with anyio.fail_after(5):
            await service.sweeper.wait_for_sweep()  # first sweep done; now sleeping up to an hour
            await service.put("default", "k", b"x", ttl_seconds=5)
            clock.advance(6)
            await service.sweeper.wait_for_sweep()  # woken by the put, not by the hour passing
        tg.cancel_scope.cancel()
    assert not stored_files(tmp_path / "storage")


async def test_bucket_keys_are_generated_once_and_persist_across_restarts(tmp_path: Path) -> None:
    first = service_in(tmp_path)
    keys = {name: b.key for name, b in first.buckets.items()}
    assert set(keys) == {"default", "uploads"} and all(len(k) > 30 for k in keys.values())
    key_file = tmp_path / "storage" / "bucket-keys.json"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    first.close()
    second = service_in(tmp_path)
    assert {name: b.key for name, b in second.buckets.items()} == keys
    assert json.loads(key_file.read_text()) == keys


async def test_configured_buckets_replace_the_embedded_default(tmp_path: Path) -> None:
    service = service_in(
        tmp_path,
        {"buckets": [{"name": "media", "visibility": "public-read", "key": "k" * 20, "ttl_seconds": 10}]},
    )
    assert list(service.buckets) == ["media"]
    assert service.buckets["media"].key == "k" * 20 and service.buckets["media"].public


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"buckets": [{"name": "Bad_Name"}]}, "buckets.0.name"),
        ({"buckets": [{"name": "presign"}]}, "buckets.0.name"),
        ({"buckets": [{"name": "abc", "visibility": "world"}]}, "buckets.0.visibility"),
        ({"max_object_size": 0}, "max_object_size"),
        ({"bucketz": []}, "bucketz"),
    ],
)
async def test_invalid_config_names_the_key_path(tmp_path: Path, config: dict, path: str) -> None:
    with pytest.raises(ServerConfigError, match=f"servers.storage.config.{path}"):
        make_domain(tmp_path, config)


async def test_presigned_urls_verify_and_refuse_expired_or_tampered_ones(tmp_path: Path) -> None:
    clock = FakeClock()
    service = service_in(tmp_path, clock=clock)
    url, expires_at = service.url("default", "doc.txt", minter="master", expires_in=60)
    assert expires_at == int(clock.now) + 60
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    expires, signature = query["X-Toolmux-Expires"], query["X-Toolmux-Signature"]
    assert (
        service.verify_presigned("GET", "default", "doc.txt", expires=expires, signature=signature, minter="master")
        is None
    )
    assert (
        service.verify_presigned("HEAD", "default", "doc.txt", expires=expires, signature=signature, minter="master")
        is None
    )
    assert "signature" in service.verify_presigned(
        "PUT", "default", "doc.txt", expires=expires, signature=signature, minter="master"
    )
    assert "signature" in service.verify_presigned(
        "GET", "default", "doc.txT", expires=expires, signature=signature, minter="master"
    )
    later = str(int(expires) + 3600)
    assert "signature" in service.verify_presigned(
        "GET", "default", "doc.txt", expires=later, signature=signature, minter="master"
    )
    clock.advance(61)
    assert "expired" in service.verify_presigned(
        "GET", "default", "doc.txt", expires=expires, signature=signature, minter="master"
    )


async def test_public_buckets_get_plain_urls_and_expiry_is_clamped(tmp_path: Path) -> None:
    clock = FakeClock()
    service = service_in(tmp_path, clock=clock)
    service.public_url = "https://hub.example"
    assert service.url("uploads", "a b.png", minter="master") == ("https://hub.example/storage/uploads/a%20b.png", None)
    _, far = service.url("default", "k", minter="master", expires_in=10**9)
    _, near = service.url("default", "k", minter="master", expires_in=0)
    assert far == int(clock.now) + 7 * 24 * 3600 and near == int(clock.now) + 1
