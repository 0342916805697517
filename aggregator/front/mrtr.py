"""Multi round-trip requests (2026-07-28) on top of legacy upstream sessions.

A legacy upstream asks for sampling, elicitation or roots *during* a call, as a JSON-RPC request.
A stateless client cannot be sent a request; it must get an `input_required` result and retry.
So the hub parks the upstream call: it answers the client with `inputRequests` and a signed
`requestState`, keeps the upstream call waiting, and when the client retries with
`inputResponses` it answers the upstream's request and goes on waiting for the real result.

`requestState` is integrity-protected (HMAC) and bound to the principal, the method, the tool
(or prompt / resource) name, and a short expiry, as the spec asks of servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError

INPUT_TTL = 300.0  # seconds a parked call waits for the client's retry
BATCH_WINDOW = 0.05  # concurrent upstream requests arriving this close together go out in one round

Emit = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(eq=False)
class ParkedCall:
    token: str
    principal: str
    method: str
    target: str
    expires_at: float
    events_in: MemoryObjectSendStream[tuple[str, Any]]
    events_out: MemoryObjectReceiveStream[tuple[str, Any]]
    emit: Emit | None = None
    outstanding: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, tuple[anyio.Event, list[dict[str, Any]]]] = field(default_factory=dict)
    _keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    cancel_scope: anyio.CancelScope | None = None
    round: int = 0

    async def ask(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """Called on behalf of the upstream: wait for the client's answer via a retry."""
        key = f"input_{next(self._keys)}"
        request: dict[str, Any] = {"method": method}
        if params is not None:
            request["params"] = params
        done = anyio.Event()
        slot: list[dict[str, Any]] = []
        self.replies[key] = (done, slot)
        self.outstanding[key] = request
        await self.events_in.send(("input", key))
        with anyio.move_on_after(INPUT_TTL):
            await done.wait()
        self.replies.pop(key, None)
        self.outstanding.pop(key, None)
        if not slot:
            raise RpcError(jsonrpc.INPUT_REQUIRED_EXPIRED, f"the client did not answer {method} in time")
        return slot[0]

    def answer(self, responses: dict[str, Any]) -> None:
        for key, value in responses.items():
            waiting = self.replies.get(key)
            if waiting is not None and isinstance(value, dict) and not waiting[0].is_set():
                waiting[1].append(value)
                self.outstanding.pop(key, None)
                waiting[0].set()

    async def progress_emit(self, message: dict[str, Any]) -> None:
        if self.emit is not None:
            try:
                await self.emit(message)
            except Exception:
                self.emit = None


class InputBroker:
    """Registry of parked calls, and the signer of their `requestState`."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._parked: dict[str, ParkedCall] = {}
        # With replicas: told each parked call's token before its first input_required goes out, so
        # a retry landing on another replica can be forwarded here (front/forward.py).
        self.announce: Callable[[str], Awaitable[None]] | None = None

    def holds(self, token: str) -> bool:
        return token in self._parked

    @staticmethod
    def token_of(state: Any) -> str | None:
        """The parked call a `requestState` names (unchecked: only for routing the retry)."""
        if not isinstance(state, str) or state.count(".") != 3:
            return None
        base, _, _round = state.split(".")[1].rpartition("-")
        return base or None

    def use_secret(self, secret: bytes) -> None:
        """Sign and check `requestState` with the fleet's shared secret (docs/scale-out.md)."""
        self._secret = secret

    def park(self, principal: str, method: str, target: str) -> ParkedCall:
        self._expire()
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](64)
        call = ParkedCall(secrets.token_hex(12), principal, method, target, time.monotonic() + INPUT_TTL, send, receive)
        self._parked[call.token] = call
        return call

    def release(self, call: ParkedCall) -> None:
        self._parked.pop(call.token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for token, call in list(self._parked.items()):
            if call.expires_at < now:
                self._parked.pop(token, None)
                if call.cancel_scope is not None:
                    call.cancel_scope.cancel()

    # --- requestState --------------------------------------------------------------------------------
    def _sign(self, *parts: str) -> str:
        mac = hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def state_for(self, call: ParkedCall) -> str:
        # A fresh state per round: a client must not be able to replay an earlier round's state.
        call.round += 1
        expiry = str(int(time.time() + INPUT_TTL))
        token = f"{call.token}-{call.round}"
        sig = self._sign(token, expiry, call.principal, call.method, call.target)
        return f"tm1.{token}.{expiry}.{sig}"

    def resume(self, state: Any, principal: str, method: str, target: str) -> ParkedCall:
        """The parked call `state` refers to; RpcError(-32602) if tampered, expired, or not this request's."""
        invalid = RpcError(jsonrpc.INVALID_PARAMS, "requestState is invalid, expired, or belongs to another request")
        if not isinstance(state, str) or state.count(".") != 3:
            raise invalid
        version, token, expiry, sig = state.split(".")
        if version != "tm1" or not expiry.isdigit():
            raise invalid
        expected = self._sign(token, expiry, principal, method, target)
        if not hmac.compare_digest(sig, expected) or int(expiry) < time.time():
            raise invalid
        self._expire()
        base, _, round_text = token.rpartition("-")
        call = self._parked.get(base)
        if call is None or round_text != str(call.round):
            raise invalid
        return call

    async def next_round(self, call: ParkedCall, emit: Emit) -> tuple[str, Any]:
        """Wait for the parked call's next event: ("done", response) or ("input", requests)."""
        call.emit = emit
        kind, value = await call.events_out.receive()
        if kind == "done":
            return kind, value
        # Let concurrent upstream requests join this round.
        with anyio.move_on_after(BATCH_WINDOW):
            while True:
                more_kind, more = await call.events_out.receive()
                if more_kind == "done":
                    # The call finished while batching (it gave up on its requests): report that.
                    return more_kind, more
        return "input", dict(call.outstanding)

    def input_required(self, call: ParkedCall) -> dict[str, Any]:
        return {
            "resultType": "input_required",
            "inputRequests": dict(call.outstanding),
            "requestState": self.state_for(call),
        }


def check_input_responses(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise RpcError(jsonrpc.INVALID_PARAMS, "inputResponses must be an object mapping request keys to results")
    return value
