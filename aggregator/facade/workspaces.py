"""HTTP face of the workspaces server, routed onto its tools through the hub's dispatch path.

    GET    /workspaces                              list_workspaces (?prefix=)
    GET    /workspaces/status                       status
    PUT    /workspaces/files/<workspace>/<path>     write the raw request body (201 new, 200 replaced)
    GET    /workspaces/files/<workspace>/<path>     the file's raw bytes; a path ending in '/' (or
                                                    none) lists that directory (?recursive=true)
    DELETE /workspaces/files/<workspace>/<path>     delete (?recursive=true for a directory)
    GET    /workspaces/sessions/<workspace>         list_sessions
    POST   /workspaces/runs                         run (body = the tool's arguments); 409 when busy
    GET    /workspaces/runs/<run_id>                run_result (?wait=seconds)
    DELETE /workspaces/runs/<run_id>                run_cancel

A nested workspace is separated from the path by a `-` segment: `/workspaces/files/clients/acme/-/
q1.csv` (workspace segments never are `-`); without one the first segment is the workspace.
A sync run is cancelled (its processes killed) when the client disconnects. Errors are
`{"error": {code, message, field?, request_id}}` with the status the error code maps to.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aggregator.facade.base import FacadeContext, FacadeHTTPError, request_id_of
from aggregator.facade.common import (
    CLIENT_GONE,
    Handler,
    call_structured,
    guarded_endpoint,
    json_object,
    json_response,
    read_capped,
)
from aggregator.principal import Principal

SERVER = "workspaces"
PREFIX = "/workspaces"
MAX_FILE_BODY = 64 * 1024 * 1024  # the server refuses files over its own max_file_bytes (413)
MAX_JSON_BODY = 4 * 1024 * 1024
FILE_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 24 * 3600.0  # the server's run_timeout is the real bound


def split_location(rest: str) -> tuple[str, str]:
    """`(workspace, path)` from what follows /workspaces/files/."""
    segments = rest.split("/")
    if "-" in segments:
        cut = segments.index("-")
        return "/".join(segments[:cut]), "/".join(segments[cut + 1 :])
    return segments[0], "/".join(segments[1:])


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise FacadeHTTPError(400, f"query parameter {name!r} must be true or false", code="invalid_argument", param=name)


async def until_disconnect(request: Request, call: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
    """Run `call` while watching the connection: `(True, result)`, or `(False, None)` when the client
    went away first (then `call` was cancelled, which stops the run and kills its processes)."""
    outcome: dict[str, Any] = {}

    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        async def work() -> None:
            try:
                outcome["result"] = await call()
            except Exception as exc:  # re-raised below, unwrapped from the task group
                outcome["error"] = exc
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(work)
    if "error" in outcome:
        raise outcome["error"]
    return ("result" in outcome), outcome.get("result")


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    async def call(principal: Principal, request: Request, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await call_structured(ctx, principal, request, f"{SERVER}-{tool}", arguments)

    def endpoint(handler: Handler, timeout_s: float = FILE_TIMEOUT_S) -> Callable[[Request], Awaitable[Response]]:
        # This face has never sent Retry-After with its tool errors (the other faces do).
        return guarded_endpoint(ctx, handler, timeout_s)

    async def list_workspaces(principal: Principal, request: Request) -> Response:
        args = {"prefix": request.query_params["prefix"]} if "prefix" in request.query_params else {}
        return json_response(await call(principal, request, "list_workspaces", args), request_id_of(request))

    async def status(principal: Principal, request: Request) -> Response:
        return json_response(await call(principal, request, "status", {}), request_id_of(request))

    async def get_file(principal: Principal, request: Request) -> Response:
        workspace, path = split_location(request.path_params["rest"])
        request_id = request_id_of(request)
        if not path or path.endswith("/"):
            args = {"workspace": workspace, "path": path, "recursive": _flag(request, "recursive", False)}
            return json_response(await call(principal, request, "list_files", args), request_id)
        answer = await call(
            principal, request, "read_file", {"workspace": workspace, "path": path, "encoding": "base64"}
        )
        data = base64.b64decode(answer.get("base64", ""))
        media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = {"x-request-id": request_id}
        if answer.get("modified"):
            modified = datetime.fromisoformat(str(answer["modified"]).replace("Z", "+00:00"))
            headers["last-modified"] = format_datetime(modified, usegmt=True)
        return Response(data, media_type=media_type, headers=headers)

    async def put_file(principal: Principal, request: Request) -> Response:
        workspace, path = split_location(request.path_params["rest"])
        data = await read_capped(request, MAX_FILE_BODY)
        args = {
            "workspace": workspace,
            "path": path,
            "base64": base64.b64encode(data).decode("ascii"),
            "make_parents": _flag(request, "make_parents", True),
            "overwrite": _flag(request, "overwrite", True),
        }
        answer = await call(principal, request, "write_file", args)
        return json_response(answer, request_id_of(request), 201 if answer.get("created") else 200)

    async def delete_file(principal: Principal, request: Request) -> Response:
        workspace, path = split_location(request.path_params["rest"])
        args = {"workspace": workspace, "path": path, "recursive": _flag(request, "recursive", False)}
        return json_response(await call(principal, request, "delete_file", args), request_id_of(request))

    async def list_sessions(principal: Principal, request: Request) -> Response:
        args = {"workspace": request.path_params["workspace"]}
        return json_response(await call(principal, request, "list_sessions", args), request_id_of(request))

    async def start_run(principal: Principal, request: Request) -> Response:
        request_id = request_id_of(request)
        raw = await read_capped(request, MAX_JSON_BODY)
        args = json_object(raw, not_object="body must be a JSON object of run arguments", loads=orjson.loads)
        background = bool(args.get("async") or args.get("fire_and_forget"))
        if background:
            return json_response(await call(principal, request, "run", args), request_id, 202)
        finished, answer = await until_disconnect(request, lambda: call(principal, request, "run", args))
        if not finished:
            return Response(status_code=CLIENT_GONE)
        return json_response(answer, request_id)

    async def run_result(principal: Principal, request: Request) -> Response:
        try:
            wait = float(request.query_params.get("wait", "0"))
        except ValueError:
            raise FacadeHTTPError(
                400, "'wait' must be a number of seconds", code="invalid_argument", param="wait"
            ) from None
        args = {"run_id": request.path_params["run_id"], "wait_seconds": wait}
        return json_response(await call(principal, request, "run_result", args), request_id_of(request))

    async def run_cancel(principal: Principal, request: Request) -> Response:
        args = {"run_id": request.path_params["run_id"]}
        return json_response(await call(principal, request, "run_cancel", args), request_id_of(request))

    return [
        Route(PREFIX, endpoint(list_workspaces), methods=["GET"]),
        Route(PREFIX + "/status", endpoint(status), methods=["GET"]),
        Route(PREFIX + "/files/{rest:path}", endpoint(get_file), methods=["GET"]),
        Route(PREFIX + "/files/{rest:path}", endpoint(put_file), methods=["PUT"]),
        Route(PREFIX + "/files/{rest:path}", endpoint(delete_file), methods=["DELETE"]),
        Route(PREFIX + "/sessions/{workspace:path}", endpoint(list_sessions), methods=["GET"]),
        Route(PREFIX + "/runs", endpoint(start_run, RUN_TIMEOUT_S), methods=["POST"]),
        Route(PREFIX + "/runs/{run_id}", endpoint(run_result, 330.0), methods=["GET"]),
        Route(PREFIX + "/runs/{run_id}", endpoint(run_cancel, 60.0), methods=["DELETE"]),
    ]
