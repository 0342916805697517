"""Clients that ask for a large result and never read it cannot pile it up in the hub (issue 19, item 4)."""

from __future__ import annotations

import gc
import socket
from pathlib import Path

import anyio
import httpx2
import psutil
import pytest

from tests.aggregator.hubkit import MASTER_KEY, RunningHub, probe, running_hub

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
RESULT = 10 * MiB
BOUND = 24 * MiB
ENVELOPE = (
    '"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", '
    '"io.modelcontextprotocol/clientCapabilities": {}}'
)


def ask_for_blob(port: int, size: int) -> socket.socket:
    """A raw client that asks for `size` characters of result and then reads nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, so the kernel does not take the response off the hub's hands.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    body = (
        f'{{"jsonrpc": "2.0", "id": 1, "method": "tools/call", '
        f'"params": {{"name": "alpha-blob", "arguments": {{"size": {size}}}, {ENVELOPE}}}}}'
    ).encode()
    head = (
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\n"
        f"Authorization: Bearer {MASTER_KEY}\r\nMcp-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
        f"Mcp-Name: alpha-blob\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def read_to_the_end(sock: socket.socket) -> None:
    sock.settimeout(10)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass


def port_of(running: RunningHub) -> int:
    return int(running.url.rsplit(":", 1)[1])


async def gauge(running: RunningHub) -> float:
    async with httpx2.AsyncClient(base_url=running.url) as client:
        metrics = await client.get("/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})
    for line in metrics.text.splitlines():
        if line.startswith("toolmux_buffered_response_bytes "):
            return float(line.split()[1])
    raise AssertionError("no toolmux_buffered_response_bytes in /metrics")


async def test_twenty_clients_that_never_read_a_10_mb_result_stay_within_the_global_bound(tmp_path: Path) -> None:
    http = {"max_buffered_response_bytes": BOUND, "send_timeout": 600}
    async with running_hub(tmp_path, {"alpha": probe("alpha")}, http=http) as running:
        buffers = running.app.buffers
        # Warm the path once (a reading client), so the measure is of what unread answers hold.
        async with running.client() as hub:
            await hub.call_tool("alpha-blob", {"size": RESULT})
        gc.collect()
        before = psutil.Process().memory_info().rss
        clients = [ask_for_blob(port_of(running), RESULT) for _ in range(20)]
        try:
            with anyio.fail_after(60):
                for _ in range(6000):
                    if buffers.refused + buffers.sending == 20:
                        break
                    await anyio.sleep(0.01)
            gc.collect()
            grown = psutil.Process().memory_info().rss - before
            held = await gauge(running)
            print(f"held {held / MiB:.1f} MiB for {buffers.sending} clients; the hub grew by {grown / MiB:.0f} MiB")
            # The bound admits two or three 10 MB answers (the kernel takes a few MB of each off the
            # hub's hands); the others were refused at once (503).
            assert buffers.sending in (2, 3) and buffers.refused == 20 - buffers.sending
            assert 10 * MiB < held <= BOUND
            # What is held, plus the decoded results those bytes were made from (20 unread answers
            # added 193 MB before the bound).
            assert grown < 3 * BOUND, f"the hub grew by {grown / MiB:.0f} MiB"
            async with running.client() as hub:
                assert (await hub.call("alpha-echo", text="still answering"))["text"] == "still answering"
        finally:
            for sock in clients:
                sock.close()
        # Clients that leave release what was held for them.
        with anyio.fail_after(30):
            for _ in range(3000):
                if buffers.buffered == 0:
                    break
                await anyio.sleep(0.01)
        assert await gauge(running) == 0


async def test_a_client_that_reads_nothing_for_the_send_timeout_is_dropped_and_its_bytes_freed(tmp_path: Path) -> None:
    http = {"send_timeout": 1}
    async with running_hub(tmp_path, {"alpha": probe("alpha")}, http=http) as running:
        buffers = running.app.buffers
        sock = ask_for_blob(port_of(running), RESULT)
        try:
            with anyio.fail_after(30):
                for _ in range(3000):
                    if buffers.dropped == 1:
                        break
                    await anyio.sleep(0.01)
            assert buffers.buffered == 0
            # The hub closed the connection: what the client reads ends.
            with anyio.fail_after(20):
                await anyio.to_thread.run_sync(read_to_the_end, sock)
        finally:
            sock.close()
