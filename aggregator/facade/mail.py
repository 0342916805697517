"""The mail HTTP API: REST-style routes translated onto the mail server's tools.

    GET    /mail/mailboxes                                   mail-mailboxes      (?check=true)
    GET    /mail/inbox                                       mail-inbox          (?mailboxes=a,b&limit=&unseen_only=)
    GET    /mail/{mailbox}/folders                           mail-list_folders
    GET    /mail/{mailbox}/messages                          mail-list_messages  (?folder=&limit=&before_uid=)
    GET    /mail/{mailbox}/search   | POST (JSON criteria)   mail-search         (?from=&subject=&since=...)
    GET    /mail/{mailbox}/messages/{uid}                    mail-get_message    (?folder=&prefer=&include_html=)
    DELETE /mail/{mailbox}/messages/{uid}                    mail-delete         (?folder=&permanent=)
    POST   /mail/{mailbox}/messages/{uid}/seen|flag|move     mail-mark_seen / mail-flag / mail-move (JSON body)
    POST   /mail/{mailbox}/messages/{uid}/attachments/{i}/save  mail-get_message save_attachments
    POST   /mail/{mailbox}/messages/seen|flag|move|delete    the same tools over {"uids": [...]} (batch)
    POST   /mail/{mailbox}/send                              mail-send

Every route is a facade-kit endpoint (`facades.mail` / `facades.mail_send` limits); errors are
toolmux's plain JSON body with the status the error code maps to.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

import schemas
from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import Call, endpoint, mount
from aggregator.protocol.errors import ErrorCode, RequestError

SERVER = "mail"
_RESERVED_QUERY = {"api_key"}
_ACTIONS = {"seen": "mark_seen", "flag": "flag", "move": "move", "delete": "delete"}


def _schema(tool: str) -> dict[str, Any]:
    schema: dict[str, Any] = schemas.tool(SERVER, tool)["inputSchema"]
    return schema


def _convert(name: str, raw: list[str], prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    if kind == "array":
        items = [piece for value in raw for piece in value.split(",") if piece != ""]
        item_prop = prop.get("items", {})
        return [_convert(name, [item], item_prop) for item in items]
    value = raw[-1]
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            raise RequestError(f"query parameter '{name}' must be an integer", field=name) from None
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "1", "yes", ""):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise RequestError(f"query parameter '{name}' must be true or false", field=name)
    return value


def query_arguments(request: Request, tool: str) -> dict[str, Any]:
    """Query parameters typed by the tool's input schema (`a,b` or repeated keys for arrays)."""
    properties = _schema(tool).get("properties", {})
    out: dict[str, Any] = {}
    for name in dict.fromkeys(request.query_params.keys()):
        if name in _RESERVED_QUERY:
            continue
        if name not in properties:
            raise RequestError(f"unknown query parameter '{name}' for {tool}", field=name)
        out[name] = _convert(name, request.query_params.getlist(name), properties[name])
    return out


async def _answer(call: Call, tool: str, arguments: dict[str, Any]) -> Response:
    result = await call.tool(f"{SERVER}-{tool}", arguments)
    structured = result.get("structuredContent")
    return call.json_response(structured if isinstance(structured, dict) else {})


def _path(call: Call) -> dict[str, Any]:
    return {k: v for k, v in call.request.path_params.items() if k in ("mailbox", "uid")}


def _query(call: Call, tool: str) -> dict[str, Any]:
    return {**query_arguments(call.request, tool), **_path(call)}


def _action(call: Call, *, batch: bool) -> str:
    tool = _ACTIONS.get(call.request.path_params["action"])
    if tool is None or (tool == "delete" and not batch):
        known = "seen, flag, move or delete" if batch else "seen, flag or move"
        raise RequestError(f"no action {call.request.path_params['action']!r}; use {known}", code=ErrorCode.NOT_FOUND)
    return tool


@endpoint(limit="mail")
async def mailboxes(call: Call) -> Response:
    return await _answer(call, "mailboxes", query_arguments(call.request, "mailboxes"))


@endpoint(limit="mail")
async def inbox(call: Call) -> Response:
    return await _answer(call, "inbox", query_arguments(call.request, "inbox"))


@endpoint(limit="mail")
async def folders(call: Call) -> Response:
    return await _answer(call, "list_folders", _query(call, "list_folders"))


@endpoint(limit="mail")
async def messages(call: Call) -> Response:
    return await _answer(call, "list_messages", _query(call, "list_messages"))


@endpoint(limit="mail", body="json")
async def search(call: Call) -> Response:
    given = await call.json(empty={}) if call.request.method == "POST" else query_arguments(call.request, "search")
    return await _answer(call, "search", {**given, **_path(call)})


@endpoint(limit="mail")
async def get_message(call: Call) -> Response:
    return await _answer(call, "get_message", _query(call, "get_message"))


@endpoint(limit="mail")
async def delete_message(call: Call) -> Response:
    args = query_arguments(call.request, "delete")
    args.pop("uids", None)
    path = _path(call)
    return await _answer(call, "delete", {**args, "mailbox": path["mailbox"], "uids": [path["uid"]]})


@endpoint(limit="mail", body="json")
async def message_action(call: Call) -> Response:
    tool = _action(call, batch=False)
    body = await call.json(empty={})
    body.pop("uids", None)
    path = _path(call)
    return await _answer(call, tool, {**body, "mailbox": path["mailbox"], "uids": [path["uid"]]})


@endpoint(limit="mail", body="json")
async def batch_action(call: Call) -> Response:
    tool = _action(call, batch=True)
    return await _answer(call, tool, {**await call.json(empty={}), **_path(call)})


@endpoint(limit="mail", body="json")
async def save_attachment(call: Call) -> Response:
    body = await call.json(empty={})
    index = call.request.path_params["index"]
    request_args: dict[str, Any] = {"index": index, "bucket": body.pop("bucket", None)}
    if request_args["bucket"] is None:
        raise RequestError("missing required field 'bucket'", field="bucket")
    if "key" in body:
        request_args["key"] = body.pop("key")
    args = {**body, **_path(call), "save_attachments": [request_args]}
    message = await call.structured(f"{SERVER}-get_message", args)
    return call.json_response(dict(message["attachments"][index]))


@endpoint(limit="mail_send", body="json")
async def send(call: Call) -> Response:
    return await _answer(call, "send", {**await call.json(empty={}), **_path(call)})


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    prefix = "/mail"
    message = f"{prefix}/{{mailbox}}/messages/{{uid:int}}"
    return mount(
        ctx,
        [
            ("GET", f"{prefix}/mailboxes", mailboxes),
            ("GET", f"{prefix}/inbox", inbox),
            ("GET", f"{prefix}/{{mailbox}}/folders", folders),
            ("GET", f"{prefix}/{{mailbox}}/messages", messages),
            ("GET", f"{prefix}/{{mailbox}}/search", search),
            ("POST", f"{prefix}/{{mailbox}}/search", search),
            ("POST", f"{prefix}/{{mailbox}}/send", send),
            ("GET", message, get_message),
            ("DELETE", message, delete_message),
            ("POST", f"{message}/attachments/{{index:int}}/save", save_attachment),
            ("POST", f"{message}/{{action}}", message_action),
            ("POST", f"{prefix}/{{mailbox}}/messages/{{action}}", batch_action),
        ],
    )
