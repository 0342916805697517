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

Every route authenticates, caps the request body, bounds the call with a timeout and answers
tool errors as `{"error": {code, message, field}}` with the status the error code maps to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import schemas
from aggregator.facade.base import FacadeContext, FacadeHTTPError, raise_for_result, request_id_of
from aggregator.facade.common import guarded_endpoint, read_capped
from aggregator.principal import Principal
from servers.kit import ToolError

SERVER = "mail"
MAX_JSON_BODY = 256 * 1024
MAX_SEND_BODY = 48 * 1024 * 1024  # inline base64 attachments
CALL_TIMEOUT = 300.0
_RESERVED_QUERY = {"api_key"}
_ACTIONS = {"seen": "mark_seen", "flag": "flag", "move": "move", "delete": "delete"}

Handler = Callable[[Request], Awaitable[Response]]


def _schema(tool: str) -> dict[str, Any]:
    return schemas.tool(SERVER, tool)["inputSchema"]


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
            raise FacadeHTTPError(
                400, f"query parameter '{name}' must be an integer", code="invalid_argument", param=name
            ) from None
    if kind == "boolean":
        lowered = value.lower()
        if lowered in ("true", "1", "yes", ""):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise FacadeHTTPError(
            400, f"query parameter '{name}' must be true or false", code="invalid_argument", param=name
        )
    return value


def query_arguments(request: Request, tool: str) -> dict[str, Any]:
    """Query parameters typed by the tool's input schema (`a,b` or repeated keys for arrays)."""
    properties = _schema(tool).get("properties", {})
    out: dict[str, Any] = {}
    for name in dict.fromkeys(request.query_params.keys()):
        if name in _RESERVED_QUERY:
            continue
        if name not in properties:
            raise FacadeHTTPError(
                400, f"unknown query parameter '{name}' for {tool}", code="invalid_argument", param=name
            )
        out[name] = _convert(name, request.query_params.getlist(name), properties[name])
    return out


async def json_body(request: Request, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    body = await read_capped(request, limit, too_large="request body over {limit} bytes")
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FacadeHTTPError(400, "request body is not valid JSON", code="invalid_argument") from None
    if not isinstance(data, dict):
        raise FacadeHTTPError(400, "request body must be a JSON object", code="invalid_argument")
    return data


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    async def call(request: Request, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        principal = ctx.authenticate(request)
        assert principal is not None
        try:
            with anyio.fail_after(CALL_TIMEOUT):
                result = await ctx.call_tool(
                    principal, f"{SERVER}-{tool}", arguments, request_id=request_id_of(request)
                )
        except TimeoutError:
            raise ToolError(f"the mail call took longer than {CALL_TIMEOUT:.0f} s", code="timeout") from None
        structured = raise_for_result(result).get("structuredContent")
        return structured if isinstance(structured, dict) else {}

    def endpoint(build: Callable[[Request], Awaitable[dict[str, Any]]]) -> Handler:
        async def answer(principal: Principal, request: Request) -> Response:
            return JSONResponse(await build(request))

        # No timeout around the whole request: `call` bounds the tool call alone, not the upload.
        return guarded_endpoint(ctx, answer, None)

    def path_args(request: Request) -> dict[str, Any]:
        return {k: v for k, v in request.path_params.items() if k in ("mailbox", "uid")}

    async def mailboxes(request: Request) -> dict[str, Any]:
        return await call(request, "mailboxes", query_arguments(request, "mailboxes"))

    async def inbox(request: Request) -> dict[str, Any]:
        return await call(request, "inbox", query_arguments(request, "inbox"))

    async def folders(request: Request) -> dict[str, Any]:
        return await call(request, "list_folders", {**query_arguments(request, "list_folders"), **path_args(request)})

    async def messages(request: Request) -> dict[str, Any]:
        return await call(request, "list_messages", {**query_arguments(request, "list_messages"), **path_args(request)})

    async def search(request: Request) -> dict[str, Any]:
        given = await json_body(request) if request.method == "POST" else query_arguments(request, "search")
        return await call(request, "search", {**given, **path_args(request)})

    async def get_message(request: Request) -> dict[str, Any]:
        return await call(request, "get_message", {**query_arguments(request, "get_message"), **path_args(request)})

    async def delete_message(request: Request) -> dict[str, Any]:
        args = query_arguments(request, "delete")
        args.pop("uids", None)
        path = path_args(request)
        return await call(request, "delete", {**args, "mailbox": path["mailbox"], "uids": [path["uid"]]})

    async def message_action(request: Request) -> dict[str, Any]:
        tool = _ACTIONS.get(request.path_params["action"])
        if tool is None or tool == "delete":
            raise FacadeHTTPError(
                404, f"no action {request.path_params['action']!r}; use seen, flag or move", code="not_found"
            )
        body = await json_body(request)
        body.pop("uids", None)
        path = path_args(request)
        return await call(request, tool, {**body, "mailbox": path["mailbox"], "uids": [path["uid"]]})

    async def batch_action(request: Request) -> dict[str, Any]:
        tool = _ACTIONS.get(request.path_params["action"])
        if tool is None:
            raise FacadeHTTPError(
                404, f"no action {request.path_params['action']!r}; use seen, flag, move or delete", code="not_found"
            )
        body = await json_body(request)
        return await call(request, tool, {**body, **path_args(request)})

    async def save_attachment(request: Request) -> dict[str, Any]:
        body = await json_body(request)
        index = request.path_params["index"]
        request_args: dict[str, Any] = {"index": index, "bucket": body.pop("bucket", None)}
        if request_args["bucket"] is None:
            raise FacadeHTTPError(400, "missing required field 'bucket'", code="invalid_argument", param="bucket")
        if "key" in body:
            request_args["key"] = body.pop("key")
        args = {**body, **path_args(request), "save_attachments": [request_args]}
        message = await call(request, "get_message", args)
        return dict(message["attachments"][index])

    async def send(request: Request) -> dict[str, Any]:
        body = await json_body(request, MAX_SEND_BODY)
        return await call(request, "send", {**body, **path_args(request)})

    prefix = "/mail"
    return [
        Route(f"{prefix}/mailboxes", endpoint(mailboxes), methods=["GET"]),
        Route(f"{prefix}/inbox", endpoint(inbox), methods=["GET"]),
        Route(f"{prefix}/{{mailbox}}/folders", endpoint(folders), methods=["GET"]),
        Route(f"{prefix}/{{mailbox}}/messages", endpoint(messages), methods=["GET"]),
        Route(f"{prefix}/{{mailbox}}/search", endpoint(search), methods=["GET", "POST"]),
        Route(f"{prefix}/{{mailbox}}/send", endpoint(send), methods=["POST"]),
        Route(f"{prefix}/{{mailbox}}/messages/{{uid:int}}", endpoint(get_message), methods=["GET"]),
        Route(f"{prefix}/{{mailbox}}/messages/{{uid:int}}", endpoint(delete_message), methods=["DELETE"]),
        Route(
            f"{prefix}/{{mailbox}}/messages/{{uid:int}}/attachments/{{index:int}}/save",
            endpoint(save_attachment),
            methods=["POST"],
        ),
        Route(f"{prefix}/{{mailbox}}/messages/{{uid:int}}/{{action}}", endpoint(message_action), methods=["POST"]),
        Route(f"{prefix}/{{mailbox}}/messages/{{action}}", endpoint(batch_action), methods=["POST"]),
    ]
