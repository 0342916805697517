"""Background health probes: one light request per backend, judged per deployment.

A deployment is unhealthy when its backend does not answer, when the backend does not list the
deployment's model, or while its circuit is open. Only `required` backends can turn the
server's own health red: optional ones being down is reported, never fatal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from servers.models.adapters import Adapter
from servers.models.config import ModelsConfig
from servers.models.errors import UpstreamError
from servers.models.router import DeploymentState

_log = logging.getLogger("toolmux.models")


class HealthMonitor:
    def __init__(
        self,
        config: ModelsConfig,
        adapters: dict[str, Adapter],
        states: dict[str, DeploymentState],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.adapters = adapters
        self.states = states
        self.clock = clock
        self.backends: dict[str, dict[str, Any]] = {}

    async def _probe_backend(self, name: str) -> None:
        adapter = self.adapters[name]
        timeout = self.config.health.timeout
        try:
            with anyio.fail_after(timeout + 1):
                served = await adapter.probe(timeout)
        except (UpstreamError, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, UpstreamError) else "probe timed out"
            self.backends[name] = {"healthy": False, "reason": reason}
            served = None
        else:
            self.backends[name] = {"healthy": True, "reason": None}
        now = self.clock()
        for alias in self.config.aliases.values():
            for dep in alias.deployments:
                if dep.backend != name:
                    continue
                state = self.states[dep.id]
                state.checked_at = now
                if not self.backends[name]["healthy"]:
                    state.healthy, state.health_reason = False, self.backends[name]["reason"]
                elif served is not None and dep.model not in served:
                    state.healthy, state.health_reason = False, f"backend {name!r} does not list model {dep.model!r}"
                else:
                    state.healthy, state.health_reason = True, None

    async def probe_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for name in self.adapters:
                tg.start_soon(self._probe_backend, name)

    async def run(self) -> None:
        """Probe forever (until cancelled), every `health.interval` seconds."""
        while True:
            try:
                await self.probe_all()
            except Exception:  # a probe bug must not end the loop
                _log.exception("health probe failed")
            await anyio.sleep(self.config.health.interval)

    def report(self) -> dict[str, Any]:
        deployments = []
        for alias_name, alias in self.config.aliases.items():
            for dep in alias.deployments:
                state = self.states[dep.id]
                circuit = state.breaker.state
                healthy = state.healthy is not False and circuit != "open"
                reason = state.health_reason
                if circuit == "open":
                    reason = f"circuit open: {state.breaker.last_error}"
                deployments.append(
                    {
                        "alias": alias_name,
                        "deployment": dep.id,
                        "backend": dep.backend,
                        "healthy": healthy,
                        "probed": state.healthy is not None,
                        "reason": reason,
                        "circuit": circuit,
                        "in_flight": state.in_flight,
                    }
                )
        required_down = [
            name
            for name, backend in self.config.backends.items()
            if backend.required and not self.backends.get(name, {"healthy": True})["healthy"]
        ]
        return {
            "healthy": not required_down,
            "details": {
                "deployments": deployments,
                "backends": {
                    name: self.backends.get(name, {"healthy": None, "reason": "not probed yet"})
                    for name in self.config.backends
                },
                "required_down": required_down,
            },
        }
