"""The hub: which upstreams exist, their lifecycle, the catalog they feed, and who hears of changes."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from aggregator import __version__, dispatch
from aggregator.auth import INTERNAL, KeyStore
from aggregator.catalog import Catalog
from aggregator.config import HubConfig, ServerEntry
from aggregator.console.llm_metrics import LlmMetrics, LlmStateCollector
from aggregator.facade.llm_support import buffered_bytes
from aggregator.metrics import Metrics
from aggregator.principal import KeyLimits, Principal
from aggregator.protocol import jsonrpc
from aggregator.protocol.jsonrpc import RpcError
from aggregator.state import State, StateUnavailable, open_state
from aggregator.upstreams import openers
from aggregator.upstreams.upstream import ChannelOpener, Upstream, UpstreamKind
from servers import registry
from servers.kit.context import delegation_meta
from servers.kit.domain import HEALTH_METHOD, Domain
from servers.kit.errors import ToolError
from servers.kit.settings import ServerConfigError, ServerSettings

_log = logging.getLogger("toolmux.hub")


class ChangeAudience(Protocol):
    """Who hears of catalog changes and of upstream notifications outside any call (the front layer)."""

    async def list_changed(self, method: str, kind: str) -> None: ...

    async def resource_updated(self, uri: str, params: dict[str, Any]) -> None: ...

    async def server_log(self, params: dict[str, Any] | None) -> None: ...

    def close(self) -> None: ...

    def client_count(self) -> int:
        """Clients connected now (a replica's load in the fleet view)."""
        ...


class InProcessHubCaller:
    """`HubCaller` for built-ins running inside the hub: calls go through dispatch, no HTTP hop."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        try:
            with anyio.fail_after(timeout or 300):
                return await dispatch.call_tool(self._hub, INTERNAL, name, arguments, client_meta=delegation_meta())
        except RpcError as exc:
            raise dispatch.tool_error(exc) from None
        except TimeoutError:
            raise ToolError(f"{name} did not finish in time", code="timeout", retryable=True) from None


def plan_servers(config: HubConfig) -> tuple[dict[str, tuple[ServerEntry, str | None]], dict[str, str]]:
    """{name: (entry, builtin name or None)} of upstreams to run, and {name: reason} of unavailable ones."""
    planned: dict[str, tuple[ServerEntry, str | None]] = {}
    unavailable: dict[str, str] = {}
    wanted = [n for n, b in registry.BUILTINS.items() if b.auto] if config.builtins == "auto" else list(config.builtins)
    for name in wanted:
        if name not in registry.BUILTINS:
            unavailable[name] = f"no built-in server named {name!r}"
            continue
        entry = config.servers.get(name) or ServerEntry.model_validate({})
        if entry.kind == "builtin" and entry.enabled:
            planned[name] = (entry, entry.builtin or name)
    for name, entry in config.servers.items():
        if not entry.enabled:
            planned.pop(name, None)
            continue
        if entry.kind == "builtin":
            builtin = entry.builtin or name
            if builtin not in registry.BUILTINS:
                unavailable[name] = f"no built-in server named {builtin!r}"
                continue
            planned[name] = (entry, builtin)
        else:
            planned[name] = (entry, None)
    for name, (_entry, chosen) in list(planned.items()):
        if chosen is not None:
            reason = registry.BUILTINS[chosen].unavailable_reason()
            if reason:
                unavailable[name] = reason
                del planned[name]
    return planned, unavailable


class Hub:
    def __init__(self, config: HubConfig, *, master_key: str, public_url: str | None = None) -> None:
        self.config = config
        self.keys = KeyStore(master_key, config)
        self.catalog = Catalog(config.catalog.separator)
        self.metrics = Metrics()
        self.llm_metrics = LlmMetrics(
            self.metrics.registry, litellm_names=config.metrics.litellm_names, activity=self.metrics.activity
        )
        self.metrics.registry.register(
            LlmStateCollector(self.models_service, buffered_bytes, litellm_names=config.metrics.litellm_names)
        )
        self.public_url = public_url
        self.upstreams: dict[str, Upstream] = {}
        self.unavailable: dict[str, str] = {}
        self.domains: dict[str, Domain] = {}
        # The front layer's clients, told of catalog changes (see ChangeAudience).
        self.audiences: list[ChangeAudience] = []
        self.started_at = time.time()
        self._tg: TaskGroup | None = None
        self.state: State | None = None  # shared stores (docs/scale-out.md); None: embedded, in each domain
        self._rebuild_lock = anyio.Lock()
        self._upstream_subscriptions: dict[tuple[str, str], int] = {}
        self._close_key_store: Callable[[], Awaitable[None]] | None = None

    @property
    def data_dir(self) -> Any:
        return self.config.data_dir

    @property
    def task_group(self) -> TaskGroup:
        assert self._tg is not None, "the hub is not running"
        return self._tg

    def add_audience(self, audience: ChangeAudience) -> None:
        self.audiences.append(audience)

    # --- plan -----------------------------------------------------------------------------------
    def plan(self, config: HubConfig) -> tuple[dict[str, tuple[ServerEntry, str | None]], dict[str, str]]:
        return plan_servers(config)

    def _opener(self, name: str, entry: ServerEntry, builtin: str | None) -> tuple[ChannelOpener, UpstreamKind]:
        if builtin is None:
            if entry.command:
                return (lambda: openers.stdio_opener(name, entry)), UpstreamKind.STDIO
            from aggregator.upstreams.http import http_opener

            return http_opener(name, entry, self.data_dir), UpstreamKind.HTTP
        spec = registry.BUILTINS[builtin]
        mode = entry.mode or spec.default_mode
        if mode == "stdio":
            env = {"TOOLMUX_DATA_DIR": str(self.data_dir.resolve())}
            if self.public_url:
                env["TOOLMUX_PUBLIC_URL"] = self.public_url
                env["TOOLMUX_HUB_URL"] = f"{self.public_url}/mcp/"
                env["TOOLMUX_HUB_KEY"] = self.keys.internal_key
            return (lambda: openers.builtin_child_opener(name, builtin, entry, env)), UpstreamKind.BUILTIN_STDIO
        settings = ServerSettings(
            name=name,
            config=entry.config,
            data_dir=self.data_dir,
            public_url=self.public_url,
            hub=InProcessHubCaller(self),
            state=self.state,
            key_limits=self.key_limits,
            observer=self.llm_metrics,
        )
        domain = spec.create(settings)
        self.domains[name] = domain
        return (lambda: openers.open_inprocess(name, domain)), UpstreamKind.BUILTIN_INPROCESS

    # --- lifecycle --------------------------------------------------------------------------------
    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if not self.config.state.embedded:
                    self.state = await open_state(self.config.state, data_dir=self.data_dir)
                    # Reported with each heartbeat: where other replicas forward this one's sessions.
                    self.state.url = (self.config.state.advertise_url or self.public_url or "").rstrip("/")
                    tg.start_soon(self.state.run_heartbeat, __version__, self._client_count)
                await self._open_managed_keys(tg)
                self._apply(self.config)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            if self.state is not None:  # after the domains' lifespans ended (their last usage rows flushed)
                await self.state.aclose()
            if self._close_key_store is not None:
                with anyio.CancelScope(shield=True):
                    await self._close_key_store()

    async def _open_managed_keys(self, tg: TaskGroup) -> None:
        """Keys created through /admin/keys: the shared state's store, else the data dir's SQLite file."""
        from aggregator.console.keys import ManagedKeys
        from aggregator.state.sqlite_store import SqliteStore

        if self.state is not None:
            store: Any = self.state.keys
        else:
            try:
                store = await anyio.to_thread.run_sync(SqliteStore, self.data_dir / "state.sqlite3")
            except (OSError, sqlite3.Error) as exc:
                # The hub still serves (YAML keys, the master key); only managed keys are missing.
                _log.error("managed keys are off: the key store %s cannot be opened: %s", self.data_dir, exc)
                return
            self._close_key_store = store.aclose
        managed = ManagedKeys(store, taken=lambda name: name in self.keys.config_names)
        try:
            await managed.reload()
        except StateUnavailable as exc:  # the mirror starts empty; its refresh loop retries
            _log.warning("managed keys: the key store did not answer at start (%s)", exc)
        self.keys.managed = managed
        tg.start_soon(managed.run)

    def _client_count(self) -> float:
        return float(sum(audience.client_count() for audience in self.audiences))

    def _apply(self, config: HubConfig) -> None:
        planned, unavailable = self.plan(config)
        self.unavailable = unavailable
        for name, reason in unavailable.items():
            _log.warning("server %s unavailable: %s", name, reason)
        for name, (entry, builtin) in planned.items():
            self._start_upstream(name, entry, builtin)

    def _start_upstream(self, name: str, entry: ServerEntry, builtin: str | None) -> None:
        try:
            opener, kind = self._opener(name, entry, builtin)
        except ServerConfigError as exc:
            self.unavailable[name] = f"invalid config: {exc}"
            return
        except Exception as exc:
            _log.exception("server %s could not be created", name)
            self.unavailable[name] = f"failed to start: {exc}"
            return
        self.add_upstream(name, entry, opener, kind, builtin)

    def add_upstream(
        self, name: str, entry: ServerEntry, opener: ChannelOpener, kind: UpstreamKind, builtin: str | None = None
    ) -> Upstream:
        """Supervise an upstream reached through `opener`; its tools join the catalog once it is ready."""
        upstream = Upstream(
            name,
            entry,
            opener,
            on_change=self._upstream_changed,
            on_notification=self._upstream_notification,
            kind=kind,
            builtin=builtin,
        )
        self.upstreams[name] = upstream
        self.task_group.start_soon(upstream.run, name=f"upstream {name}")
        return upstream

    async def wait_settled(self, timeout: float) -> None:
        """Wait until every upstream finished its first connection attempt (ready or down)."""
        with anyio.move_on_after(timeout):
            for upstream in list(self.upstreams.values()):
                await upstream.settled.wait()

    async def stop(self) -> None:
        for upstream in self.upstreams.values():
            upstream.stop()
        for audience in self.audiences:
            audience.close()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def reload(self, config: HubConfig) -> dict[str, list[str]]:
        """Apply a new config without touching upstreams whose entry did not change."""
        planned, unavailable = self.plan(config)
        old = {name: (u.entry, u.builtin) for name, u in self.upstreams.items()}
        report: dict[str, list[str]] = {"kept": [], "started": [], "restarted": [], "stopped": []}
        for name, upstream in list(self.upstreams.items()):
            if name not in planned:
                upstream.stop()
                del self.upstreams[name]
                self.domains.pop(name, None)
                report["stopped"].append(name)
        self.config = config
        verifier = self.keys.token_verifier
        self.keys = KeyStore(self.keys.master_key, config, self.keys.internal_key, self.keys.managed)
        self.keys.token_verifier = verifier  # OAuth tokens are not config keys: a reload keeps them valid
        self.catalog.separator = config.catalog.separator
        self.unavailable = unavailable
        for name, (entry, builtin) in planned.items():
            if name in old and old[name] == (entry, builtin):
                report["kept"].append(name)
                continue
            if name in self.upstreams:
                self.upstreams.pop(name).stop()
                self.domains.pop(name, None)
                report["restarted"].append(name)
            else:
                report["started"].append(name)
            self._start_upstream(name, entry, builtin)
        await self._upstream_changed(None)
        return report

    # --- catalog changes and notifications ---------------------------------------------------------
    async def _upstream_changed(self, upstream: Upstream | None) -> None:
        async with self._rebuild_lock:
            for u in self.upstreams.values():
                self.metrics.upstream_up.labels(u.name).set(1 if u.is_ready else 0)
            tools, resources, prompts = self.catalog.rebuild(list(self.upstreams.values()))
        announced = upstream.announced if upstream is not None else None
        tools = tools or announced == "tools"
        resources = resources or announced == "resources"
        prompts = prompts or announced == "prompts"
        for error in self.catalog.snapshot.errors:
            _log.error("%s", error)
        if tools:
            await self.broadcast("notifications/tools/list_changed", "tools")
        if resources:
            await self.broadcast("notifications/resources/list_changed", "resources")
        if prompts:
            await self.broadcast("notifications/prompts/list_changed", "prompts")

    async def broadcast(self, method: str, kind: str) -> None:
        """A list changed: every audience decides which of its clients hear of it."""
        for audience in self.audiences:
            await audience.list_changed(method, kind)

    async def _upstream_notification(self, upstream: Upstream, method: str, params: dict[str, Any] | None) -> None:
        if method == "notifications/resources/updated" and params and isinstance(params.get("uri"), str):
            uri = self.catalog.resource_uri(upstream, params["uri"])
            for audience in self.audiences:
                await audience.resource_updated(uri, {**params, "uri": uri})
        elif method == "notifications/message":
            for audience in self.audiences:
                await audience.server_log(params)
        else:
            _log.debug("server %s: unhandled notification %s", upstream.name, method)

    async def subscribe_upstream(self, uri: str, subscribe: bool) -> None:
        """Reference-counted resources/subscribe towards the upstream serving `uri`."""
        resolved = self.catalog.resolve_resource(uri)
        if resolved is None:
            return
        upstream, original = resolved
        key = (upstream.name, original)
        count = self._upstream_subscriptions.get(key, 0)
        new = count + 1 if subscribe else max(count - 1, 0)
        self._upstream_subscriptions[key] = new
        if upstream.modern:
            upstream.set_resource_subscriptions(
                {uri for (name, uri), n in self._upstream_subscriptions.items() if name == upstream.name and n > 0}
            )
            return
        if not upstream.capabilities.get("resources", {}).get("subscribe"):
            return
        if (subscribe and count == 0) or (not subscribe and new == 0 and count > 0):
            method = "resources/subscribe" if subscribe else "resources/unsubscribe"
            try:
                await upstream.request(method, {"uri": original})
            except RpcError as exc:
                _log.warning("server %s: %s %s failed: %s", upstream.name, method, original, exc.message)

    def models_service(self) -> Any:
        """The models server's service when it runs in this process (its state feeds /metrics), else None."""
        for name, upstream in self.upstreams.items():
            if upstream.builtin == "models" and upstream.kind.in_process and name in self.domains:
                return self.domains[name].service
        return None

    def key_limits(self, name: str) -> KeyLimits | None:
        """What a managed key allows on models (alias allow-list, rpm/tpm, budget); None for other keys."""
        managed = self.keys.managed
        found = managed.signing_secret(name) if managed is not None else None
        return found[1].limits if found is not None else None

    # --- identity & health ------------------------------------------------------------------------
    def server_info(self) -> dict[str, Any]:
        return {"name": "toolmux", "title": "toolmux hub", "version": __version__}

    def instructions(self, principal: Principal) -> str | None:
        """The ready servers' instructions, naming only the servers `principal` can reach."""
        reachable = self.reachable_servers(principal)
        parts = [
            f"[{u.name}] {u.instructions}"
            for u in self.upstreams.values()
            if u.is_ready and u.instructions and u.name in reachable
        ]
        return "\n\n".join(parts) or None

    def reachable_servers(self, principal: Principal) -> set[str]:
        """Servers with a tool or prompt `principal` may call, or resources it may read."""
        if principal.is_master:
            return set(self.upstreams)
        snapshot = self.catalog.snapshot
        names = {t.upstream.name for n, t in snapshot.tools.items() if principal.may_call(n)}
        names.update(p.upstream.name for n, p in snapshot.prompts.items() if principal.may_call(n))
        names.update(u.name for u in snapshot.upstreams.values() if self.catalog.may_read(principal, u))
        return names

    async def deep_health(self) -> dict[str, Any]:
        """`health(deep=True)` plus each in-process domain's own check (backends, engines)."""
        report = self.health(deep=True)
        if self.state is not None:
            report["state"] = await self.state.health()  # the shared stores' reachability and the fleet

        async def check(name: str, upstream: Upstream) -> None:
            domain = self.domains.get(name)
            try:
                with anyio.fail_after(5):
                    if upstream.kind.in_process and domain is not None and domain.health is not None:
                        report["servers"][name]["health"] = await domain.health()
                    elif upstream.kind is UpstreamKind.BUILTIN_STDIO and upstream.is_ready:
                        result = await upstream.request(HEALTH_METHOD, None, timeout=5)
                        report["servers"][name]["health"] = {
                            k: v for k, v in result.items() if k not in ("resultType", "_meta")
                        }
            except RpcError as exc:
                if exc.code != jsonrpc.METHOD_NOT_FOUND:
                    report["servers"][name]["health"] = {"healthy": False, "error": exc.message}
            except Exception as exc:
                report["servers"][name]["health"] = {"healthy": False, "error": f"health check failed: {exc!r}"}

        async with anyio.create_task_group() as tg:
            for name, upstream in list(self.upstreams.items()):
                tg.start_soon(check, name, upstream)
        return report

    def health(self, *, deep: bool) -> dict[str, Any]:
        servers: dict[str, Any] = {}
        for name, upstream in self.upstreams.items():
            info: dict[str, Any] = {
                "state": upstream.state,
                "kind": upstream.kind,
                "tools": len(upstream.listing.tools) if upstream.is_ready else 0,
                "restarts": upstream.restarts,
            }
            if upstream.reason:
                info["reason"] = upstream.reason
            if deep:
                info["transport"] = upstream.describe or openers.describe_entry(upstream.entry)
                if upstream.server_info:
                    info["server_info"] = upstream.server_info
            servers[name] = info
        for name, reason in self.unavailable.items():
            servers[name] = {"state": "unavailable", "reason": reason}
        ready = [n for n, u in self.upstreams.items() if u.is_ready]
        status = "ok" if len(ready) == len(self.upstreams) else ("degraded" if ready else "down")
        out: dict[str, Any] = {
            "status": status,
            "version": __version__,
            "servers": servers,
            "tools": len(self.catalog.snapshot.tools),
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }
        if self.catalog.snapshot.errors:
            out["catalog_errors"] = list(self.catalog.snapshot.errors)
        return out
