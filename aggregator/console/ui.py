"""The web console at /ui/: server-rendered pages (Starlette + Jinja2) for an operator with an admin key.

Every route is a facade-kit endpoint (request id, limits, error rendering) with `auth="optional"`:
the browser proves who it is with the session cookie, not a header. Pages need a session of a key
that is still an admin (`Principal.is_admin`); every POST carries the session's CSRF token; the
sign-in is rate-limited per client address. Nothing is loaded from another host (the CSP says so).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from aggregator import dispatch
from aggregator.console import views
from aggregator.console.admin_api import create_key, revoke_key, rotate_key
from aggregator.console.charts import bar_chart
from aggregator.console.session import COOKIE, LOGIN_COOKIE, Session, Sessions
from aggregator.facade.base import FacadeContext
from aggregator.facade.context import HubFacadeContext
from aggregator.facade.kit import Call, Endpoint, endpoint, mount
from aggregator.principal import Principal
from aggregator.protocol.errors import ErrorCode, RequestError, ToolmuxError
from aggregator.protocol.jsonrpc import RpcError

if TYPE_CHECKING:
    from aggregator.hub import Hub

HERE = Path(__file__).parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGES = ("overview", "tools", "models", "keys", "usage", "activity")


class Console:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sessions = Sessions()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), enable_async=False
        )
        self.templates.filters["json"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
        self.templates.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(ts)))
        self.templates.filters["usd"] = lambda value: f"${float(value or 0):.6f}".rstrip("0").rstrip(".")

    # --- plumbing --------------------------------------------------------------------------------
    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(pages=PAGES, **context)
        return HTMLResponse(html, status_code=status, headers=secure_headers())

    def signed_in(self, call: Call) -> tuple[Session, Principal] | None:
        """The session and its key, while the key still exists and is an admin."""
        token = call.request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        if session is None:
            return None
        found = self.hub.keys.secret_for(session.key_name)
        if found is None or not found[1].is_admin:
            self.sessions.close(token)
            return None
        return session, found[1]

    def page(self, call: Call) -> tuple[Session, Principal] | Response:
        signed = self.signed_in(call)
        if signed is None:
            return RedirectResponse("/ui/login", status_code=303, headers=secure_headers())
        return signed

    async def form(self, call: Call, session: Session | None, csrf: str | None = None) -> dict[str, str]:
        """The POSTed form, refused (403) unless it carries the expected CSRF token."""
        raw = await call.body()
        fields = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        expected = csrf if csrf is not None else session.csrf if session is not None else ""
        sent = fields.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise RequestError(
                "the form's CSRF token is missing or wrong; reload the page", code=ErrorCode.FORBIDDEN, field="csrf"
            )
        return fields

    # --- sign-in ---------------------------------------------------------------------------------
    async def login_page(self, call: Call) -> Response:
        if self.signed_in(call) is not None:
            return RedirectResponse("/ui/", status_code=303)
        token = secrets.token_urlsafe(24)
        response = self.render("login.html", csrf=token, error=None)
        set_cookie(response, call, LOGIN_COOKIE, token, max_age=3600)
        return response

    async def login(self, call: Call) -> Response:
        client = call.request.client.host if call.request.client else "unknown"
        wait = self.sessions.retry_after(client)
        if wait:
            raise ToolmuxError(
                "too many failed sign-ins; try again later", code=ErrorCode.RATE_LIMITED, retry_after=wait
            )
        fields = await self.form(call, None, csrf=call.request.cookies.get(LOGIN_COOKIE, ""))
        principal = self.hub.keys.principal_for(fields.get("key", "").strip() or None)
        if principal is None or not principal.is_admin or principal.name == "internal":
            self.sessions.failed(client)
            token = secrets.token_urlsafe(24)
            message = "That key is not an admin key." if principal is not None else "That key is not valid."
            response = self.render("login.html", status=403 if principal else 401, csrf=token, error=message)
            set_cookie(response, call, LOGIN_COOKIE, token, max_age=3600)
            return response
        token, _session = self.sessions.open(principal)
        redirect = RedirectResponse("/ui/overview", status_code=303, headers=secure_headers())
        set_cookie(redirect, call, COOKIE, token)
        redirect.delete_cookie(LOGIN_COOKIE, path="/ui")
        return redirect

    async def logout(self, call: Call) -> Response:
        signed = self.signed_in(call)
        if signed is not None:
            await self.form(call, signed[0])
            self.sessions.close(call.request.cookies.get(COOKIE))
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # --- pages -----------------------------------------------------------------------------------
    async def home(self, call: Call) -> Response:
        return RedirectResponse("/ui/overview" if self.signed_in(call) else "/ui/login", status_code=303)

    async def overview(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        data = views.overview(self.hub)
        return self.render(
            "overview.html",
            page="overview",
            session=signed[0],
            who=signed[1].name,
            data=data,
            replicas=await views.replicas(self.hub),
        )

    async def tools(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        query = call.request.query_params.get("q", "")
        return self.render(
            "tools.html",
            page="tools",
            session=signed[0],
            who=signed[1].name,
            query=query,
            tools=views.tools(self.hub, query),
        )

    async def tool(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        session, principal = signed
        name = call.request.path_params["name"]
        entry = self.hub.catalog.tool(name)
        if entry is None:
            raise RequestError(f"unknown tool {name!r}", code=ErrorCode.NOT_FOUND, field="name")
        result: Any = None
        arguments = "{}"
        if call.request.method == "POST":
            fields = await self.form(call, session)
            arguments = fields.get("arguments", "{}")
            result = await self.call_tool(principal, name, arguments, call.request_id)
        return self.render(
            "tool.html",
            page="tools",
            session=session,
            who=principal.name,
            tool=entry.wire,
            server=entry.upstream.name,
            arguments=arguments,
            result=result,
        )

    async def call_tool(self, principal: Principal, name: str, arguments: str, request_id: str) -> dict[str, Any]:
        """The tool called through the normal dispatch path, as the signed-in operator's key."""
        try:
            parsed = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            return {"error": f"arguments are not JSON: {exc}"}
        if not isinstance(parsed, dict):
            return {"error": "arguments must be a JSON object"}
        try:
            answer = await dispatch.call_tool(self.hub, principal, name, parsed, request_id=request_id)
        except RpcError as exc:
            return {"error": exc.message}
        return {"result": answer, "is_error": bool(answer.get("isError"))}

    async def models(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        return self.render(
            "models.html", page="models", session=signed[0], who=signed[1].name, models=views.models(self.hub)
        )

    async def keys(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        session, principal = signed
        shown: dict[str, Any] | None = None
        error: str | None = None
        if call.request.method == "POST":
            fields = await self.form(call, session)
            try:
                shown = await self.key_action(fields)
            except ToolmuxError as exc:
                error = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return self.render(
            "keys.html",
            page="keys",
            session=session,
            who=principal.name,
            keys=await views.keys(self.hub),
            shown=shown,
            error=error,
            now=time.time(),
        )

    async def key_action(self, fields: dict[str, str]) -> dict[str, Any]:
        action = fields.get("action", "create")
        if action == "rotate":
            return await rotate_key(self.hub, fields.get("name", ""))
        if action == "revoke":
            return await revoke_key(self.hub, fields.get("name", ""))
        days = fields.get("expires_days", "").strip()
        spec: dict[str, Any] = {
            "name": fields.get("name", "").strip(),
            "tools": fields.get("tools", "*") or "*",
            "scopes": [s for s in ("metrics", "admin") if fields.get(f"scope_{s}")],
            "budget": fields.get("budget") or None,
            "budget_period": fields.get("budget_period") or "month",
            "rpm": fields.get("rpm") or None,
            "tpm": fields.get("tpm") or None,
            "expires_in": float(days) * 86400 if _is_number(days) else (days or None),
        }
        if fields.get("models", "").strip():
            spec["models"] = fields["models"]
        return await create_key(self.hub, spec)

    async def usage(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        days = call.request.query_params.get("days", "30")
        span = int(days) if days.isdigit() and 0 < int(days) <= 366 else 30
        data = await views.usage(self.hub, span)
        charts: dict[str, Any] = {}
        if data is not None:
            by_day = data["by"]["day"]["rows"]
            charts["cost"] = bar_chart(
                [(r["day"], float(r["cost"])) for r in by_day], title="Spend per day", unit=" USD"
            )
            charts["requests"] = bar_chart([(r["day"], float(r["requests"])) for r in by_day], title="Requests per day")
            charts["per_key"] = bar_chart(
                [(r["key"], float(r["cost"])) for r in data["by"]["key"]["rows"]], title="Spend per key", unit=" USD"
            )
        return self.render(
            "usage.html", page="usage", session=signed[0], who=signed[1].name, usage=data, days=span, charts=charts
        )

    async def activity(self, call: Call) -> Response:
        signed = self.page(call)
        if isinstance(signed, Response):
            return signed
        filters = activity_filters(call)
        return self.render(
            "activity.html",
            page="activity",
            session=signed[0],
            who=signed[1].name,
            filters=filters,
            entries=self.hub.metrics.activity.recent(limit=200, filters=filters),
            keys=list(self.hub.metrics.activity.keys()),
            query="&".join(f"{k}={quote(v)}" for k, v in filters.items() if v),
        )

    async def live(self, call: Call) -> Response:
        """The JSON the pages poll: new activity entries and the overview's figures."""
        if self.signed_in(call) is None:
            raise ToolmuxError("sign in at /ui/login", code=ErrorCode.UNAUTHENTICATED)
        after = call.request.query_params.get("after", "0")
        entries = self.hub.metrics.activity.recent(
            after=int(after) if after.isdigit() else 0, limit=100, filters=activity_filters(call)
        )
        return call.json_response({"activity": entries, "overview": views.overview(self.hub)})

    async def static(self, call: Call) -> Response:
        name = call.request.path_params["name"]
        if name not in STATIC:
            raise RequestError(f"no static file {name!r}", code=ErrorCode.NOT_FOUND)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name], headers={"cache-control": "max-age=300"})


def activity_filters(call: Call) -> dict[str, str]:
    params = call.request.query_params
    return {name: params.get(name, "").strip()[:100] for name in ("key", "name", "kind", "status")}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def secure_headers() -> dict[str, str]:
    return {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",  # "no-referrer" makes Chrome send `Origin: null` on POSTs
        "cache-control": "no-store",
    }


def set_cookie(response: Response, call: Call, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=call.request.url.scheme == "https",
    )


def routes(ctx: FacadeContext) -> list[BaseRoute]:
    if not isinstance(ctx, HubFacadeContext):
        return []
    console = Console(ctx.hub)

    def ui(handler: Any) -> Endpoint:
        return endpoint(limit="console", auth="optional")(handler)

    return mount(
        ctx,
        [
            ("GET", "/", ui(console.home)),  # a person opening the hub's address lands on the console
            ("GET", "/ui", ui(console.home)),
            ("GET", "/ui/", ui(console.home)),
            ("GET", "/ui/login", ui(console.login_page)),
            ("POST", "/ui/login", ui(console.login)),
            ("POST", "/ui/logout", ui(console.logout)),
            ("GET", "/ui/overview", ui(console.overview)),
            ("GET", "/ui/tools", ui(console.tools)),
            ("GET", "/ui/tools/{name}", ui(console.tool)),
            ("POST", "/ui/tools/{name}", ui(console.tool)),
            ("GET", "/ui/models", ui(console.models)),
            ("GET", "/ui/keys", ui(console.keys)),
            ("POST", "/ui/keys", ui(console.keys)),
            ("GET", "/ui/usage", ui(console.usage)),
            ("GET", "/ui/activity", ui(console.activity)),
            ("GET", "/ui/live", ui(console.live)),
            ("GET", "/ui/static/{name}", ui(console.static)),
        ],
    )
