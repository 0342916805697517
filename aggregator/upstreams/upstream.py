"""One upstream MCP server, supervised: connect, handshake, list, serve, restart with backoff.

The session is long-lived: one handshake per (re)connection, never one per call. While the
upstream is down its tools leave the catalog (the hub tells clients with list_changed) and calls
get a clear error; when it comes back, so do its tools.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import anyio

from aggregator import __version__
from aggregator.config import ServerEntry
from aggregator.protocol import jsonrpc
from aggregator.protocol.eras import (
    LATEST_LEGACY,
    META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO,
    META_PROTOCOL_VERSION,
    META_SERVER_INFO,
    MODERN_VERSION,
)
from aggregator.protocol.jsonrpc import RpcError
from aggregator.upstreams.channel import Channel, ChannelClosed
from aggregator.upstreams.peer import CallRoute, ProgressFn, RpcPeer

_log = logging.getLogger("toolmux.upstream")

UPSTREAM_PROTOCOL_VERSION = LATEST_LEGACY
MODERN_PROTOCOL_VERSION = MODERN_VERSION
HUB_CLIENT_INFO = {"name": "toolmux", "version": __version__}
# What the hub can relay to its clients, declared where the upstream asks once (legacy handshake).
RELAYABLE_CAPABILITIES = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {"listChanged": True}}
State = Literal["starting", "ready", "down", "stopped", "unavailable"]
ChannelOpener = Callable[[], AbstractAsyncContextManager[Channel]]
LIST_METHODS = {
    "tools": "tools/list",
    "resources": "resources/list",
    "resourceTemplates": "resources/templates/list",
    "prompts": "prompts/list",
}
_LIST_KEYS = {
    "tools": "tools",
    "resources": "resources",
    "resourceTemplates": "resourceTemplates",
    "prompts": "prompts",
}
_CAPABILITY_OF = {"tools": "tools", "resources": "resources", "resourceTemplates": "resources", "prompts": "prompts"}


class UpstreamKind(StrEnum):
    """How the hub reaches an upstream (a str, so /health and logs show it as text)."""

    STDIO = "stdio"
    HTTP = "http"
    BUILTIN_STDIO = "builtin-stdio"
    BUILTIN_INPROCESS = "builtin-inprocess"

    @classmethod
    def of_entry(cls, entry: ServerEntry) -> UpstreamKind:
        """The kind a config entry implies (a built-in without a chosen mode runs as a child)."""
        return {"stdio": cls.STDIO, "http": cls.HTTP}.get(entry.kind, cls.BUILTIN_STDIO)

    @property
    def in_process(self) -> bool:
        """A built-in domain served inside the hub: it validates its own input and never asks the
        client for anything, so the hub need do neither for it."""
        return self is UpstreamKind.BUILTIN_INPROCESS


@dataclass
class Listing:
    tools: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    resourceTemplates: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)


class Upstream:
    def __init__(
        self,
        name: str,
        entry: ServerEntry,
        opener: ChannelOpener,
        *,
        on_change: Callable[[Upstream], Awaitable[None]],
        on_notification: Callable[[Upstream, str, dict[str, Any] | None], Awaitable[None]],
        on_orphan_request: Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]] | None = None,
        kind: UpstreamKind | None = None,
        builtin: str | None = None,
    ) -> None:
        self.name = name
        self.entry = entry
        self.kind = kind or UpstreamKind.of_entry(entry)
        # The built-in server this upstream runs (None for a third-party server).
        self.builtin = builtin
        self._opener = opener
        self._on_change = on_change
        self._on_notification = on_notification
        self._on_orphan_request = on_orphan_request
        self.state: State = "starting"
        self.reason: str | None = None
        self.listing = Listing()
        self.capabilities: dict[str, Any] = {}
        self.server_info: dict[str, Any] = {}
        self.instructions: str | None = None
        self.protocol_version: str | None = None
        # True when the upstream speaks the stateless revision: every request carries its envelope.
        self.modern = False
        # The era a previous connection found, so a restart need not probe again.
        self._known_era: str | None = None
        self.describe = ""
        self.restarts = 0
        self.ready_since: float | None = None
        # When the next connection attempt starts (monotonic), while the server is down and restarting.
        self.restart_at: float | None = None
        self._peer: RpcPeer | None = None
        self._ready = anyio.Event()
        # Set once the first connection attempt has ended either way (ready or failed).
        self.settled = anyio.Event()
        self._stopped = False
        self._scope: anyio.CancelScope | None = None
        # Stateless upstreams deliver change notifications on a subscriptions/listen stream.
        self.resource_subscriptions: set[str] = set()
        # Which list the server just announced as changed (set only while the hub hears of it).
        self.announced: str | None = None
        self._listen_scope: anyio.CancelScope | None = None
        self._listen_tg: Any = None

    # --- public ----------------------------------------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.state == "ready" and self._peer is not None

    @property
    def restarting(self) -> bool:
        """Down for now, and coming back by itself (its restart policy will try again)."""
        return not self._stopped and self.state in ("starting", "down")

    def retry_hint(self) -> float:
        """Seconds a caller might wait before trying this server's tools again (at least 1)."""
        waiting = self.restart_at - time.monotonic() if self.restart_at is not None else 0.0
        # A connection attempt takes about a second more (a Python child starts in 1.2-1.4 s).
        return max(1.0, float(math.ceil(waiting + 1.0)))

    async def wait_ready(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._ready.wait()
        return self.is_ready

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None = None,
        route: CallRoute | None = None,
        on_progress: ProgressFn | None = None,
        envelope: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one request; for a stateless upstream `envelope` supplies the caller's `_meta` fields
        (capabilities, log level) and the hub fills in the rest."""
        peer = self._peer
        if peer is None or self.state != "ready":
            raise RpcError(
                jsonrpc.UPSTREAM_UNAVAILABLE, f"server {self.name!r} is unavailable: {self.reason or self.state}"
            )
        if self.modern:
            params = with_envelope(params, envelope)
        try:
            return await peer.request(
                method,
                params,
                timeout=timeout or self.entry.timeouts.call,
                route=route,
                on_progress=on_progress,
                headers=headers,
            )
        except ChannelClosed as exc:
            raise RpcError(
                jsonrpc.UPSTREAM_UNAVAILABLE, f"server {self.name!r} stopped while handling {method}: {exc.reason}"
            ) from None

    def _start_listen(self) -> None:
        if self._listen_scope is not None:
            self._listen_scope.cancel()
        wanted: dict[str, Any] = {}
        for capability, key in (
            ("tools", "toolsListChanged"),
            ("prompts", "promptsListChanged"),
            ("resources", "resourcesListChanged"),
        ):
            if (self.capabilities.get(capability) or {}).get("listChanged"):
                wanted[key] = True
        if self.resource_subscriptions:
            wanted["resourceSubscriptions"] = sorted(self.resource_subscriptions)
        if not wanted or self._listen_tg is None or self._peer is None:
            self._listen_scope = None
            return
        scope = anyio.CancelScope()
        self._listen_scope = scope
        peer = self._peer

        async def listen() -> None:
            with scope:
                try:
                    await peer.request(
                        "subscriptions/listen", with_envelope({"notifications": wanted}, None), timeout=math.inf
                    )
                except (RpcError, ChannelClosed) as exc:
                    _log.info("server %s: change notifications unavailable: %s", self.name, _why(exc))

        self._listen_tg.start_soon(listen)

    def set_resource_subscriptions(self, uris: set[str]) -> None:
        """A stateless upstream: reopen the listen stream with the resource URIs clients watch."""
        if uris != self.resource_subscriptions:
            self.resource_subscriptions = set(uris)
            if self.modern and self.is_ready:
                self._start_listen()

    def stop(self) -> None:
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    # --- supervision ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and serve until stopped, restarting per the server's restart policy."""
        policy = self.entry.restart
        delay = policy.first_delay
        with anyio.CancelScope() as scope:
            self._scope = scope
            while not self._stopped:
                started = time.monotonic()
                failed = await self._serve_once()
                self.settled.set()
                if self._stopped:
                    break
                if policy.policy == "never" or (policy.policy == "on-failure" and not failed):
                    self.state = "stopped"
                    break
                # One crash restarts at once; only a server that keeps crashing (down again within
                # stable_after seconds of its restart) waits, initial_backoff doubling up to max_backoff.
                if time.monotonic() - started > policy.stable_after:
                    delay = policy.first_delay
                _log.warning("server %s is down (%s); restarting in %.1f s", self.name, self.reason, delay)
                self.restart_at = time.monotonic() + delay
                await anyio.sleep(delay)
                self.restart_at = None
                delay = min(max(delay * 2, policy.initial_backoff), policy.max_backoff)
                self.restarts += 1
        self._set_down("stopped" if self._stopped else self.state, self.reason)

    async def _serve_once(self) -> bool:
        """One connection's life. Returns True when it ended by failure."""
        self.state = "starting"
        try:
            async with self._opener() as channel:
                self.describe = channel.describe()
                peer = RpcPeer(
                    channel, self.name, on_notification=self._notification, on_orphan_request=self._on_orphan_request
                )
                async with anyio.create_task_group() as tg:
                    closed = anyio.Event()
                    reason: list[str] = []

                    async def read() -> None:
                        reason.append(await peer.run())
                        closed.set()

                    tg.start_soon(read)
                    try:
                        await self._handshake(peer)
                    except (RpcError, ChannelClosed, TimeoutError) as exc:
                        self._set_down_now("down", f"handshake failed: {_why(exc)}")
                        tg.cancel_scope.cancel()
                        return True
                    self._peer = peer
                    self.describe = channel.describe()  # a transport chosen during the handshake (HTTP auto)
                    self.state = "ready"
                    self.reason = None
                    self.ready_since = time.time()
                    self._ready.set()
                    _log.info("server %s ready (%s, %d tools)", self.name, self.describe, len(self.listing.tools))
                    if self.modern:
                        self._listen_tg = tg
                        self._start_listen()
                    await self._on_change(self)
                    # Settled only once the catalog has this server's tools (start-up waits on it).
                    self.settled.set()
                    await closed.wait()
                    tg.cancel_scope.cancel()
                self._set_down_now("down", reason[0] if reason else "connection closed")
                await self._on_change(self)
                return True
        except ChannelClosed as exc:
            self._set_down_now("down", exc.reason)
            await self._on_change(self)
            return True
        except anyio.get_cancelled_exc_class():
            self._set_down_now("stopped", "stopped")
            raise
        except Exception as exc:
            _log.exception("server %s failed", self.name)
            self._set_down_now("down", f"{type(exc).__name__}: {exc}")
            await self._on_change(self)
            return True

    def _set_down_now(self, state: State, reason: str | None) -> None:
        was_ready = self.state == "ready"
        self.state = state
        self.reason = reason
        self._peer = None
        self.ready_since = None
        self._ready = anyio.Event()
        if was_ready:
            _log.warning("server %s: %s", self.name, reason)

    def _set_down(self, state: State, reason: str | None) -> None:
        self._set_down_now(state, reason)

    async def _handshake(self, peer: RpcPeer) -> None:
        timeout = self.entry.timeouts.connect
        self.modern = False
        known = self._known_era
        if self.entry.protocol != "legacy" and known != "legacy" and await self._discover(peer):
            self._known_era = "modern"
            self.modern = True
            self.listing = await self._list_all(peer)
            return
        self._known_era = "legacy"
        result = await peer.request(
            "initialize",
            {
                "protocolVersion": UPSTREAM_PROTOCOL_VERSION,
                "capabilities": RELAYABLE_CAPABILITIES,
                "clientInfo": HUB_CLIENT_INFO,
            },
            timeout=timeout,
        )
        self.protocol_version = str(result.get("protocolVersion", ""))
        self.capabilities = result.get("capabilities") or {}
        self.server_info = result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        await peer.notify("notifications/initialized")
        if "logging" in self.capabilities:
            # Children log at their own discretion; the hub filters per client by level.
            with suppress(RpcError):
                await peer.request("logging/setLevel", {"level": "debug"}, timeout=timeout)
        self.listing = await self._list_all(peer)

    async def _discover(self, peer: RpcPeer) -> bool:
        """Probe with server/discover; True when the server speaks the stateless revision.

        The probe waits the whole connect timeout: a child is still starting when it arrives, and
        servers that predate the revision answer it with an error at once (a silent one costs the
        timeout once; the era is remembered across restarts of the same server)."""
        timeout = self.entry.timeouts.connect
        try:
            result = await peer.request("server/discover", with_envelope(None, None), timeout=timeout)
        except (RpcError, ChannelClosed) as exc:
            if self.entry.protocol == "modern":
                raise
            _log.debug("server %s: no server/discover (%s); using the session handshake", self.name, _why(exc))
            return False
        versions = result.get("supportedVersions") or []
        if MODERN_PROTOCOL_VERSION not in versions:
            return False
        self.protocol_version = MODERN_PROTOCOL_VERSION
        self.capabilities = result.get("capabilities") or {}
        meta = jsonrpc.obj(result.get("_meta"))
        self.server_info = meta.get(META_SERVER_INFO) or result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        return True

    async def _list_all(self, peer: RpcPeer) -> Listing:
        listing = Listing()
        for attr, method in LIST_METHODS.items():
            if _CAPABILITY_OF[attr] in self.capabilities:
                setattr(listing, attr, await self._paginate(peer, method, _LIST_KEYS[attr]))
        return listing

    async def _paginate(self, peer: RpcPeer, method: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):
            params = {"cursor": cursor} if cursor else None
            if self.modern:
                params = with_envelope(params, None)
            try:
                page = await peer.request(method, params, timeout=self.entry.timeouts.list)
            except RpcError as exc:
                if exc.code == jsonrpc.METHOD_NOT_FOUND:
                    return items
                raise
            items.extend(i for i in page.get(key, []) if isinstance(i, dict))
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return items

    async def _notification(self, method: str, params: dict[str, Any] | None) -> None:
        if method in (
            "notifications/tools/list_changed",
            "notifications/resources/list_changed",
            "notifications/prompts/list_changed",
        ):
            await self.refresh(method.split("/")[1])
            return
        await self._on_notification(self, method, params)

    async def refresh(self, announced: str | None = None) -> None:
        """Re-list after the server said its lists changed. `announced` ("tools", "resources",
        "prompts") is passed on even if the new list looks the same to the hub: the server may have
        changed something the hub does not compare, and clients re-fetch cheaply."""
        peer = self._peer
        if peer is None:
            return
        try:
            self.listing = await self._list_all(peer)
        except (RpcError, ChannelClosed) as exc:
            _log.warning("server %s: re-listing failed: %s", self.name, _why(exc))
            return
        self.announced = announced
        try:
            await self._on_change(self)
        finally:
            self.announced = None


def with_envelope(params: dict[str, Any] | None, envelope: dict[str, Any] | None) -> dict[str, Any]:
    """`params` with the stateless revision's `_meta` envelope (the caller's fields win)."""
    out = dict(params or {})
    meta = dict(out.get("_meta") or {})
    meta.setdefault(META_PROTOCOL_VERSION, MODERN_PROTOCOL_VERSION)
    meta.setdefault(META_CLIENT_INFO, HUB_CLIENT_INFO)
    for key, value in (envelope or {}).items():
        meta[key] = value
    meta.setdefault(META_CLIENT_CAPABILITIES, {})
    out["_meta"] = meta
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, ChannelClosed):
        return exc.reason
    if isinstance(exc, RpcError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc)
