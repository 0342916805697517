"""What each console page shows, gathered from the hub: plain data for the templates (and JSON)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.console.admin_api import list_all
from aggregator.state.interfaces import StateUnavailable

if TYPE_CHECKING:
    from aggregator.hub import Hub


def overview(hub: Hub) -> dict[str, Any]:
    health = hub.health(deep=False)
    servers = []
    for name, info in sorted(health["servers"].items()):
        servers.append(
            {
                "name": name,
                "state": info.get("state", "unknown"),
                "up": info.get("state") == "ready",
                "kind": str(info.get("kind", "")),
                "tools": info.get("tools", 0),
                "restarts": info.get("restarts", 0),
                "last_error": info.get("reason") or "",
            }
        )
    return {
        "status": health["status"],
        "version": __version__,
        "uptime": _duration(health["uptime_seconds"]),
        "tools": health["tools"],
        "servers": servers,
        "up": sum(1 for s in servers if s["up"]),
        "replica": hub.state.replica_id if hub.state is not None else "this process (embedded state)",
    }


async def replicas(hub: Hub) -> list[dict[str, Any]]:
    if hub.state is None:
        return []
    try:
        fleet = await hub.state.registry.fleet()
    except StateUnavailable:
        return []
    now = time.time()
    return [
        {"id": r.id, "version": r.version, "load": r.load, "seen": f"{now - r.last_heartbeat:.0f} s ago"} for r in fleet
    ]


def tools(hub: Hub, query: str) -> list[dict[str, Any]]:
    needle = query.lower().strip()
    found = []
    for name, entry in hub.catalog.snapshot.tools.items():
        description = str(entry.wire.get("description") or "")
        if needle and needle not in name.lower() and needle not in description.lower():
            continue
        found.append({"name": name, "server": entry.upstream.name, "description": description.split("\n", 1)[0]})
    return found


def models(hub: Hub) -> dict[str, Any] | None:
    service = hub.models_service()
    if service is None:
        return None
    report = service.health.report()
    by_id = {d["deployment"]: d for d in report["details"]["deployments"]}
    aliases = []
    for alias_name, alias in service.config.aliases.items():
        deployments = []
        for dep in alias.deployments:
            state = by_id.get(dep.id, {})
            deployments.append(
                {
                    "id": dep.id,
                    "backend": dep.backend,
                    "model": dep.model,
                    "circuit": state.get("circuit", "closed"),
                    "healthy": state.get("healthy", True),
                    "reason": state.get("reason") or "",
                    "in_flight": state.get("in_flight", 0),
                    "price_in": dep.prices.input,
                    "price_out": dep.prices.output,
                }
            )
        aliases.append(
            {
                "name": alias_name,
                "embedding": alias.embedding,
                "fallbacks": list(alias.fallbacks),
                "cache": alias.cache.enabled,
                "deployments": deployments,
            }
        )
    return {"aliases": aliases, "backends": report["details"]["backends"]}


async def keys(hub: Hub) -> list[dict[str, Any]]:
    return await list_all(hub)


async def usage(hub: Hub, days: int) -> dict[str, Any] | None:
    service = hub.models_service()
    if service is None:
        return None
    since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - days * 86400))
    by: dict[str, Any] = {}
    for group in ("key", "model", "day"):
        try:
            by[group] = await service.usage.query(group_by=[group], since=since)
        except (StateUnavailable, ValueError):
            by[group] = {"rows": [], "totals": {}}
    budgets = [service.usage.budget_status(k) for k in sorted(service.usage.budgets)]
    return {"since": since, "by": by, "budgets": [b for b in budgets if b is not None]}


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {secs}s"
