"""JSON-RPC 2.0 messages as plain dicts: codes, builders and fast encoding.

The hub forwards messages without building typed models on the hot path; these helpers keep
the wire shapes in one place.
"""

from __future__ import annotations

from typing import Any

import orjson

JSONRPC = "2.0"

# JSON-RPC 2.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP before 2026-07-28 (that revision uses INVALID_PARAMS instead)
RESOURCE_NOT_FOUND = -32002
# MCP 2026-07-28 (reserved range -32020..-32099)
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
# toolmux (implementation-defined range -32000..-32019)
UPSTREAM_UNAVAILABLE = -32010
UPSTREAM_TIMEOUT = -32011
REQUEST_CANCELLED = -32012
UNAUTHORIZED = -32013
INPUT_REQUIRED_EXPIRED = -32014

RequestId = str | int


class RpcError(Exception):
    """An error that becomes a JSON-RPC error response."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def dumps(message: Any) -> bytes:
    return orjson.dumps(message)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def request(request_id: RequestId, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": JSONRPC, "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": JSONRPC, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def result(request_id: RequestId | None, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": request_id, "result": value}


def error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": JSONRPC, "id": request_id, "error": err}


def error_from(request_id: RequestId | None, exc: RpcError) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": request_id, "error": exc.to_error()}


def obj(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one (for optional `params`, `_meta`, …)."""
    return value if isinstance(value, dict) else {}


def is_request(msg: dict[str, Any]) -> bool:
    return "method" in msg and "id" in msg


def is_notification(msg: dict[str, Any]) -> bool:
    return "method" in msg and "id" not in msg


def is_response(msg: dict[str, Any]) -> bool:
    return "method" not in msg and ("result" in msg or "error" in msg)


def valid_id(value: Any) -> bool:
    return (isinstance(value, (str, int))) and not isinstance(value, bool)


def check_message(msg: Any) -> str | None:
    """Why `msg` is not a single valid JSON-RPC 2.0 message (None when it is)."""
    if not isinstance(msg, dict):
        return "a JSON-RPC message must be a JSON object (batches are not supported)"
    if msg.get("jsonrpc") != JSONRPC:
        return "'jsonrpc' must be \"2.0\""
    if "method" in msg:
        if not isinstance(msg["method"], str):
            return "'method' must be a string"
        if "id" in msg and not valid_id(msg["id"]):
            return "'id' must be a string or an integer"
        if "params" in msg and not isinstance(msg["params"], dict):
            return "'params' must be an object"
        return None
    if "id" in msg and ("result" in msg or "error" in msg):
        return None
    return "not a request, notification or response"
