"""A full disk: storage answers 507 (S3: InsufficientStorage), retryable, and stores nothing half-written.

The storage face runs in a child process whose data dir is a real 1 MiB tmpfs, mounted in the
child's own user + mount namespace (`unshare -Urm`, no privileges needed, gone when it exits).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.support.small_disk_storage import MASTER_KEY

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]
MASTER = {"Authorization": f"Bearer {MASTER_KEY}"}


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "-Urm", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/mnt"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_namespaces = pytest.mark.skipif(
    not _namespaces_work(), reason="needs unprivileged user namespaces (unshare -Urm) to mount a small tmpfs"
)


@asynccontextmanager
async def storage_on_a_tiny_disk(tmp_path: Path) -> AsyncIterator[str]:
    directory = tmp_path / "tiny"
    directory.mkdir()
    command = ["unshare", "-Urm", "--propagation", "private", sys.executable]
    command += ["-m", "tests.support.small_disk_storage", str(directory)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with await anyio.open_process(command, cwd=ROOT, env=env) as process:
        try:
            assert process.stdout is not None
            with anyio.fail_after(30):
                port = (await process.stdout.receive()).decode().strip()
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            with anyio.fail_after(10):
                await process.wait()


@needs_namespaces
async def test_a_full_disk_answers_507_retryably_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    too_big = os.urandom(2 * 1024 * 1024)  # twice the whole filesystem
    async with storage_on_a_tiny_disk(tmp_path) as url, httpx2.AsyncClient(base_url=url, headers=MASTER) as http:
        full = await http.put("/storage/default/big.bin", content=too_big, headers={"x-request-id": "disk-1"})
        assert full.status_code == 507, full.text
        assert full.json()["error"]["code"] == "InsufficientStorage"
        assert full.json()["error"]["request_id"] == "disk-1" and int(full.headers["retry-after"]) > 0

        signed = await http.put(
            "/storage/default/big.bin", content=too_big, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        )
        assert signed.status_code == 507 and b"<Code>InsufficientStorage</Code>" in signed.content

        assert (await http.get("/storage/default/big.bin")).status_code == 404
        assert (await http.get("/storage/default")).json()["objects"] == []
        # The refused bytes were all removed: the same small disk takes a smaller object at once.
        small = os.urandom(600 * 1024)
        assert (await http.put("/storage/default/small.bin", content=small)).status_code == 200
        assert (await http.get("/storage/default/small.bin")).content == small
