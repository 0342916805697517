"""Storage throughput: PUT/GET of 4 KB and 8 MB objects through the HTTP API vs plain file copies.

    .venv/bin/python bench/storage_throughput.py [--small-count 300] [--large-count 12] [--mode MODE]

MODE `face` (default) serves the storage face alone (uvicorn, as the hub serves it) in a separate
process; `hub-inprocess` and `hub-child` run a whole hub with storage in its process or as its
child (the hub forwarding /storage/ over a unix socket). Data lives under a temp dir; the client
is httpx2 with keep-alive. The baseline copies the same bytes between files on the same disk,
once plainly and once with the fsync storage does for durability (file + directory), so the
figures show what the API itself costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MASTER_KEY = "bench-master-key-0123456789"
KB = 1024
MB = 1024 * 1024


def serve(data_dir: str, port_file: str, mode: str) -> None:
    import uvicorn
    from starlette.applications import Starlette

    from aggregator.facade.base import DirectFacadeContext
    from aggregator.facade.storage import routes
    from servers.kit import ServerSettings
    from servers.storage.server import create

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app: Any
    if mode == "face":
        domain = create(ServerSettings(name="storage", data_dir=Path(data_dir)))
        app = Starlette(routes=routes(DirectFacadeContext({"storage": domain}, master_key=MASTER_KEY)))
    else:
        from aggregator.app import HubApp
        from aggregator.config import parse
        from aggregator.hub import Hub

        servers = {"storage": {"mode": "stdio"}} if mode == "hub-child" else {}
        raw = {"builtins": ["storage"], "server": {"data_dir": data_dir}, "mcpServers": servers}
        hub = Hub(parse(raw, "<bench>"), master_key=MASTER_KEY, public_url=f"http://127.0.0.1:{port}")
        app = HubApp(hub)
    Path(port_file).write_text(str(port))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on" if mode != "face" else "auto")).run([sock])


def timed(count: int, size: int, operation: Callable[[int], None]) -> tuple[float, float]:
    """(MB/s, requests/s) of `count` runs of `operation`."""
    started = time.perf_counter()
    for index in range(count):
        operation(index)
    elapsed = time.perf_counter() - started
    return count * size / MB / elapsed, count / elapsed


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_copy(source: Path, target: Path, *, durable: bool) -> None:
    shutil.copyfile(source, target)
    if durable:
        fsync_path(target)
        fsync_path(target.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-count", type=int, default=300)
    parser.add_argument("--large-count", type=int, default=12)
    parser.add_argument("--mode", choices=("face", "hub-inprocess", "hub-child"), default="face")
    parser.add_argument("--serve", nargs=2, metavar=("DATA_DIR", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], args.mode)
        return

    import httpx2

    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        work = Path(scratch)
        port_file = work / "port"
        command = [sys.executable, __file__, "--mode", args.mode, "--serve", str(work / "data"), str(port_file)]
        server = subprocess.Popen(command, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the storage server did not start")
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}/storage/default/bench"
            headers = {"Authorization": f"Bearer {MASTER_KEY}"}
            rows: list[tuple[str, str, float, float]] = []
            with httpx2.Client(headers=headers, timeout=120) as http:
                while True:  # until the face answers (a hub first starts its upstreams)
                    try:
                        if http.get(base.rsplit("/", 2)[0] + "/").status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    if time.monotonic() > deadline + 30:
                        raise SystemExit("the storage face did not answer")
                    time.sleep(0.05)
                for label, size, count in (("4 KB", 4 * KB, args.small_count), ("8 MB", 8 * MB, args.large_count)):
                    body = os.urandom(size)
                    keys = [f"{base}/{label.replace(' ', '')}/{i}" for i in range(count)]

                    def put(index: int, body: bytes = body, keys: list[str] = keys) -> None:
                        http.put(keys[index], content=body).raise_for_status()

                    def get(index: int, size: int = size, keys: list[str] = keys) -> None:
                        response = http.get(keys[index])
                        response.raise_for_status()
                        assert len(response.content) == size

                    rows.append((label, "HTTP PUT", *timed(count, size, put)))
                    rows.append((label, "HTTP GET", *timed(count, size, get)))

                    source = work / f"source-{size}"
                    source.write_bytes(body)
                    copies = work / f"copies-{size}"
                    copies.mkdir()

                    def copy(index: int, source: Path = source, copies: Path = copies) -> None:
                        file_copy(source, copies / f"plain-{index}", durable=False)

                    def durable_copy(index: int, source: Path = source, copies: Path = copies) -> None:
                        file_copy(source, copies / f"durable-{index}", durable=True)

                    def read(index: int, copies: Path = copies, size: int = size) -> None:
                        assert len((copies / f"durable-{index}").read_bytes()) == size

                    rows.append((label, "file copy", *timed(count, size, copy)))
                    rows.append((label, "file copy + fsync", *timed(count, size, durable_copy)))
                    rows.append((label, "file read", *timed(count, size, read)))
        finally:
            server.terminate()
            server.wait(10)

    print(f"mode: {args.mode}")
    print(f"{'object':>6}  {'operation':<18} {'MB/s':>9} {'req/s':>9}")
    for label, operation, mb_per_s, per_s in rows:
        print(f"{label:>6}  {operation:<18} {mb_per_s:9.1f} {per_s:9.1f}")


if __name__ == "__main__":
    main()
