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
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from aggregator.facade.base import FacadeContext
from aggregator.facade.kit import CLIENT_GONE, Call, endpoint, mount, query_flag
from aggregator.protocol.errors import RequestError

SERVER = "workspaces"
PREFIX = "/workspaces"


def split_location(rest: str) -> tuple[str, str]:
    """`(workspace, path)` from what follows /workspaces/files/."""
    segments = rest.split("/")
    if "-" in segments:
        cut = segments.index("-")
        return "/".join(segments[:cut]), "/".join(segments[cut + 1 :])
    return segments[0], "/".join(segments[1:])


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


async def _answer(call: Call, tool: str, arguments: dict[str, Any], status: int = 200) -> Response:
    return call.json_response(await call.structured(f"{SERVER}-{tool}", arguments), status)


def _location(call: Call) -> tuple[str, str]:
    return split_location(call.request.path_params["rest"])


@endpoint(limit="workspaces_files")
async def list_workspaces(call: Call) -> Response:
    query = call.request.query_params
    return await _answer(call, "list_workspaces", {"prefix": query["prefix"]} if "prefix" in query else {})


@endpoint(limit="workspaces_files")
async def status(call: Call) -> Response:
    return await _answer(call, "status", {})


@endpoint(limit="workspaces_files")
async def get_file(call: Call) -> Response:
    workspace, path = _location(call)
    if not path or path.endswith("/"):
        recursive = query_flag(call.request, "recursive", False)
        return await _answer(call, "list_files", {"workspace": workspace, "path": path, "recursive": recursive})
    args = {"workspace": workspace, "path": path, "encoding": "base64"}
    answer = await call.structured(f"{SERVER}-read_file", args)
    data = base64.b64decode(answer.get("base64", ""))
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = {"x-request-id": call.request_id}
    if answer.get("modified"):
        modified = datetime.fromisoformat(str(answer["modified"]).replace("Z", "+00:00"))
        headers["last-modified"] = format_datetime(modified, usegmt=True)
    return Response(data, media_type=media_type, headers=headers)


@endpoint(limit="workspaces_files", body="raw")
async def put_file(call: Call) -> Response:
    workspace, path = _location(call)
    data = await call.body()
    args = {
        "workspace": workspace,
        "path": path,
        "base64": base64.b64encode(data).decode("ascii"),
        "make_parents": query_flag(call.request, "make_parents", True),
        "overwrite": query_flag(call.request, "overwrite", True),
    }
    answer = await call.structured(f"{SERVER}-write_file", args)
    return call.json_response(answer, 201 if answer.get("created") else 200)


@endpoint(limit="workspaces_files")
async def delete_file(call: Call) -> Response:
    workspace, path = _location(call)
    recursive = query_flag(call.request, "recursive", False)
    return await _answer(call, "delete_file", {"workspace": workspace, "path": path, "recursive": recursive})


@endpoint(limit="workspaces_files")
async def list_sessions(call: Call) -> Response:
    return await _answer(call, "list_sessions", {"workspace": call.request.path_params["workspace"]})


@endpoint(limit="workspaces_runs", body="json")
async def start_run(call: Call) -> Response:
    args = await call.json()
    if args.get("async") or args.get("fire_and_forget"):
        return await _answer(call, "run", args, 202)
    finished, answer = await until_disconnect(call.request, lambda: call.structured(f"{SERVER}-run", args))
    if not finished:
        return Response(status_code=CLIENT_GONE)
    return call.json_response(answer)


@endpoint(limit="workspaces_run_result")
async def run_result(call: Call) -> Response:
    try:
        wait = float(call.request.query_params.get("wait", "0"))
    except ValueError:
        raise RequestError("'wait' must be a number of seconds", field="wait") from None
    return await _answer(call, "run_result", {"run_id": call.request.path_params["run_id"], "wait_seconds": wait})


@endpoint(limit="workspaces_run_cancel")
async def run_cancel(call: Call) -> Response:
    return await _answer(call, "run_cancel", {"run_id": call.request.path_params["run_id"]})


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    return mount(
        ctx,
        [
            ("GET", PREFIX, list_workspaces),
            ("GET", PREFIX + "/status", status),
            ("GET", PREFIX + "/files/{rest:path}", get_file),
            ("PUT", PREFIX + "/files/{rest:path}", put_file),
            ("DELETE", PREFIX + "/files/{rest:path}", delete_file),
            ("GET", PREFIX + "/sessions/{workspace:path}", list_sessions),
            ("POST", PREFIX + "/runs", start_run),
            ("GET", PREFIX + "/runs/{run_id}", run_result),
            ("DELETE", PREFIX + "/runs/{run_id}", run_cancel),
        ],
    )
