"""Lean JSON-RPC peers for benchmarks: stdio and HTTP clients that cost little CPU themselves,
so a benchmark measures the server it drives, not the client."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
CLIENT_INFO = {"name": "hub-overhead-bench", "version": "1.0"}


class BenchError(RuntimeError):
    pass


# --- a lean JSON-RPC client ------------------------------------------------------------------------------


def modern_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
    }


def initialize_params() -> dict[str, Any]:
    return {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}


def check_result(response: dict[str, Any], request_id: int) -> dict[str, Any]:
    if response.get("id") != request_id or "result" not in response:
        raise BenchError(f"unexpected response to request {request_id}: {str(response)[:300]}")
    return response["result"]


class StdioPeer:
    """Newline-delimited JSON-RPC over a child's stdin/stdout; one request in flight at a time."""

    def __init__(self, command: list[str], *, cwd: Path, stderr: Any) -> None:
        self.process = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=0
        )
        self._out = self.process.stdout
        self._in = self.process.stdin
        self._ids = itertools.count(1)

    def send(self, message: dict[str, Any]) -> None:
        assert self._in is not None
        self._in.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        assert self._out is not None
        while True:
            line = self._out.readline()
            if not line:
                raise BenchError(f"the process exited (status {self.process.poll()}) before answering {method}")
            message = json.loads(line)
            if message.get("id") == request_id and "method" not in message:
                return check_result(message, request_id)

    def initialize(self) -> None:
        self.request("initialize", initialize_params())
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def close(self) -> None:
        assert self._in is not None
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class HttpPeer:
    """JSON-RPC over one keep-alive HTTP/1.1 connection; JSON and SSE responses both understood."""

    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.path = parts.path or "/"
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
        self.connection.connect()
        assert self.connection.sock is not None
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        self._ids = itertools.count(1)
        self.session_id: str | None = None

    def post(self, message: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        body = json.dumps(message, separators=(",", ":")).encode()
        self.connection.request("POST", self.path, body=body, headers={**self.headers, **headers})
        response = self.connection.getresponse()
        data = response.read()
        response_headers = {k.lower(): v for k, v in response.getheaders()}
        if not data:
            return response.status, response_headers, None
        if response_headers.get("content-type", "").startswith("text/event-stream"):
            events = [json.loads(m) for m in re.findall(rb"^data: (.*)$", data, re.MULTILINE)]
            answers = [e for e in events if "method" not in e and e.get("id") == message.get("id")]
            return response.status, response_headers, answers[-1] if answers else None
        return response.status, response_headers, json.loads(data)

    def initialize(self) -> None:
        status, headers, response = self.post(
            {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()}, {}
        )
        if status != 200 or "mcp-session-id" not in headers:
            raise BenchError(f"initialize failed: HTTP {status} {response}")
        self.session_id = headers["mcp-session-id"]
        self.post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"Mcp-Session-Id": self.session_id, "MCP-Protocol-Version": LEGACY},
        )

    def request(self, method: str, params: dict[str, Any], *, modern: bool, name: str | None = None) -> dict[str, Any]:
        request_id = next(self._ids)
        if modern:
            params = {**params, "_meta": modern_meta()}
            headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
            if name is not None:
                headers["Mcp-Name"] = name
        else:
            assert self.session_id is not None
            headers = {"Mcp-Session-Id": self.session_id, "MCP-Protocol-Version": LEGACY}
        status, _, response = self.post(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}, headers
        )
        if status != 200 or response is None:
            raise BenchError(f"{method} failed: HTTP {status} {response}")
        return check_result(response, request_id)

    def close(self) -> None:
        self.connection.close()


# --- processes under test ---------------------------------------------------------------------------------


def wait_for_tools(url: str, key: str, wanted: set[str], deadline: float) -> None:
    """Wait until the hub at `url` lists every tool in `wanted` (their servers have started)."""
    while True:
        peer = HttpPeer(url, key)
        try:
            names = {t["name"] for t in peer.request("tools/list", {}, modern=True)["tools"]}
        except (OSError, BenchError):
            names = set()
        finally:
            peer.close()
        if wanted <= names:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"the hub never listed {', '.join(sorted(wanted))} (has {sorted(names)})")
        time.sleep(0.1)
