"""Hypothesis strategies for malformed requests, and the checks every answer must pass."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import orjson
from hypothesis import strategies as st

from tests.fuzz.conftest import FACADE_TIMEOUT

# Longest any answer to malformed input may take: the facades' configured timeout, plus slack.
ANSWER_WITHIN = FACADE_TIMEOUT + 5

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Values that are never a plain string: a required string field given one of these is always wrong.
not_strings = json_values.filter(lambda v: not isinstance(v, str))


def dump(value: Any) -> bytes:
    """JSON text of `value` (the stdlib's encoder: it writes integers past 64 bits, which orjson refuses)."""
    return json.dumps(value).encode()


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


deep_json = st.integers(900, 5000).map(lambda n: deep(n) if n % 2 else b"[" * n + b"]" * n)
raw_bodies = st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/json; charset=utf-16",
        "",
    ]
)


def body_for(fields: list[str]) -> st.SearchStrategy[bytes]:
    """Malformed bodies for a route whose JSON body names `fields`: garbage, any JSON, deep JSON,
    or an object with those fields holding values of wrong kinds."""
    wrong_fields = st.fixed_dictionaries({}, optional={f: not_strings for f in fields}).map(dump)
    return st.one_of(raw_bodies, json_values.map(dump), deep_json, wrong_fields)


@dataclass
class Answer:
    status: int
    headers: httpx2.Headers
    body: bytes
    streamed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return orjson.loads(self.body)


async def send(
    client: httpx2.AsyncClient, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str]
) -> Answer:
    """One request; a streamed (SSE) answer is read up to its headers and closed."""
    with anyio.fail_after(ANSWER_WITHIN):
        async with client.stream(method, path, content=body, headers=headers) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                return Answer(response.status_code, response.headers, b"", streamed=True)
            return Answer(response.status_code, response.headers, await response.aread())


def check_json_error(answer: Answer, what: str) -> None:
    """Never a 5xx; an error is JSON and carries the request id (header always, body where it has room)."""
    assert answer.status < 500, f"{what}: {answer.status} {answer.body[:300]!r}"
    request_id = answer.headers.get("x-request-id")
    assert request_id, f"{what}: no x-request-id"
    if answer.status < 400 or answer.streamed:
        return
    assert answer.headers.get("content-type", "").startswith("application/json"), f"{what}: {answer.headers}"
    body = answer.json()
    error = body.get("error") if isinstance(body, dict) else None
    assert error is not None, f"{what}: {body!r}"
    if isinstance(error, dict) and "code" in error and "type" not in error and "jsonrpc" not in body:
        assert error.get("request_id") == request_id, f"{what}: {body!r}"  # toolmux's plain body
