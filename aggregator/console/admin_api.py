"""`/admin/keys`: list, create, rotate and revoke managed keys (the master key or a key with the admin scope).

GET    /admin/keys                 every key: managed ones (state store) and the YAML ones (read-only)
POST   /admin/keys                 {"name", "tools", "models", "scopes", "budget", "budget_period",
                                    "rpm", "tpm", "expires_at" | "expires_in", "metadata"} -> the secret, once
POST   /admin/keys/{name}/rotate   a new secret (the old one stops at once) -> the secret, once
DELETE /admin/keys/{name}          revoke: the key and every presigned URL it minted stop at once
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from aggregator.console.keys import KeyRequestError, KeySpec, ManagedKeys, describe
from aggregator.facade.base import FacadeContext
from aggregator.facade.context import HubFacadeContext
from aggregator.facade.kit import Call, endpoint, mount
from aggregator.protocol.errors import ErrorCode, RequestError, ToolmuxError
from aggregator.state.interfaces import KeyExists, KeyNotFound, StateUnavailable

if TYPE_CHECKING:
    from aggregator.hub import Hub


def hub_of(call: Call) -> Hub:
    assert isinstance(call.ctx, HubFacadeContext)
    return call.ctx.hub


def managed_keys(hub: Hub) -> ManagedKeys:
    if hub.keys.managed is None:
        raise ToolmuxError("the key store is not open yet", code=ErrorCode.UNAVAILABLE)
    return hub.keys.managed


def config_keys(hub: Hub) -> list[dict[str, Any]]:
    """The YAML keys as the admin API shows them: read-only, never their secret."""
    return [
        {
            "name": entry.name,
            "source": "config",
            "state": "active",
            "tools": list(entry.tools),
            "deny": list(entry.deny),
            "scopes": list(entry.scopes),
        }
        for entry in hub.config.auth.keys
    ]


async def list_all(hub: Hub) -> list[dict[str, Any]]:
    now = time.time()
    try:
        stored = [describe(r, now) for r in await managed_keys(hub).list()]
    except StateUnavailable as exc:
        raise ToolmuxError(f"the key store is unavailable: {exc}", code=ErrorCode.UNAVAILABLE) from None
    return config_keys(hub) + stored


async def create_key(hub: Hub, data: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = KeySpec.parse(data, now=time.time())
        record, secret = await managed_keys(hub).create(spec)
    except KeyRequestError as exc:
        raise RequestError(str(exc), field=exc.field) from None
    except KeyExists as exc:
        raise RequestError(str(exc), code=ErrorCode.CONFLICT, field="name") from None
    return {"key": describe(record, time.time()), "secret": secret}


async def rotate_key(hub: Hub, name: str) -> dict[str, Any]:
    try:
        record, secret = await managed_keys(hub).rotate(name)
    except KeyNotFound as exc:
        raise RequestError(str(exc), code=ErrorCode.NOT_FOUND, field="name") from None
    return {"key": describe(record, time.time()), "secret": secret}


async def revoke_key(hub: Hub, name: str) -> dict[str, Any]:
    if not await managed_keys(hub).revoke(name):
        raise RequestError(f"no active managed key named {name!r}", code=ErrorCode.NOT_FOUND, field="name")
    return {"name": name, "revoked": True}


@endpoint(limit="admin", auth="admin")
async def list_keys(call: Call) -> Any:
    return call.json_response({"keys": await list_all(hub_of(call))})


@endpoint(limit="admin", auth="admin", body="json")
async def create(call: Call) -> Any:
    return call.json_response(await create_key(hub_of(call), await call.json()), status=201)


@endpoint(limit="admin", auth="admin")
async def rotate(call: Call) -> Any:
    return call.json_response(await rotate_key(hub_of(call), call.request.path_params["name"]))


@endpoint(limit="admin", auth="admin")
async def revoke(call: Call) -> Any:
    return call.json_response(await revoke_key(hub_of(call), call.request.path_params["name"]))


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    if not isinstance(ctx, HubFacadeContext):
        return []
    return mount(
        ctx,
        [
            ("GET", "/admin/keys", list_keys),
            ("POST", "/admin/keys", create),
            ("POST", "/admin/keys/{name}/rotate", rotate),
            ("DELETE", "/admin/keys/{name}", revoke),
        ],
    )
