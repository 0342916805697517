"""An HTTP client that connects only where the network policy allows, and reads bodies under a cap.

The check sits at the socket layer: httpcore's network backend is wrapped so every new
connection resolves its host once through `NetworkPolicy.permitted_addresses` and connects to
exactly an address that passed (the hostname still goes to TLS for SNI and certificate checks).
A DNS answer that changes between check and connect (rebinding) therefore has nothing to act on.
Redirects are followed here, one hop at a time, so each hop's scheme is checked too and each
new host gets its own connection check. Cookies are never kept: one caller's session must not
leak into another's fetch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore2
import httpx2

from servers.kit import ToolError
from servers.kit.netpolicy import NetworkPolicy, PolicyRefusal, UnresolvableHost

ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5"


class PolicyNetworkBackend(httpcore2.AsyncNetworkBackend):
    """Resolves and checks each host before connecting, then connects to the checked address."""

    def __init__(self, policy: NetworkPolicy, inner: httpcore2.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore2.AnyIOBackend()
        self.connected: list[tuple[str, str]] = []  # (host, address) of recent connections, for tests
        self._keep = 64

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await self.policy.permitted_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
                continue
            self.connected = [*self.connected[-self._keep + 1 :], (host, str(address))]
            return stream
        assert failure is not None  # permitted_addresses never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise PolicyRefusal("unix sockets are not reachable through the web server")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PolicyTransport(httpx2.AsyncHTTPTransport):
    """httpx2's own transport with `PolicyNetworkBackend` under its connection pool."""

    def __init__(self, backend: PolicyNetworkBackend, *, max_connections: int = 100) -> None:
        # httpx2 takes no network backend argument, its connection pool does: build the
        # transport as usual (no proxy from the environment: a proxy would resolve names itself,
        # out of the policy's sight), then give it a pool over the checking backend.
        super().__init__(trust_env=False)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def _no_cookies() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


@dataclass
class RawDocument:
    url: str  # as asked
    final_url: str  # after redirects
    status: int
    media_type: str  # "text/html", without parameters; "" when the server sent none
    charset: str | None  # the Content-Type charset parameter
    content_language: str | None
    body: bytes
    cut: bool  # the body was longer than the limit and stops there
    redirects: list[str] = field(default_factory=list)


def _media_type(content_type: str) -> tuple[str, str | None]:
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip().strip("\"'").lower()
    return media.strip().lower(), charset


async def read_capped(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the decoded body, and whether there was more. Stops reading at
    the limit, so memory stays flat however large the body is. httpx2 inflates compressed bodies
    in bounded steps as they are iterated, so a gzip bomb is cut like any other body."""
    buffer = bytearray()
    async for chunk in response.aiter_bytes():
        room = limit - len(buffer)
        if len(chunk) > room:
            buffer += chunk[:room]
            return bytes(buffer), True
        buffer += chunk
    return bytes(buffer), False


class PolicyClient:
    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        user_agent: str,
        timeout_s: float,
        connect_timeout_s: float,
        max_redirects: int,
    ) -> None:
        self.policy = policy
        self.backend = PolicyNetworkBackend(policy)
        self.max_redirects = max_redirects
        self.client = httpx2.AsyncClient(
            transport=PolicyTransport(self.backend),
            timeout=httpx2.Timeout(timeout_s, connect=connect_timeout_s),
            headers={"user-agent": user_agent, "accept": ACCEPT},
            cookies=_no_cookies(),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(self, url: str, *, max_bytes: int, field: str = "url") -> RawDocument:
        """GET `url`, following redirects, each hop checked; the body cut at `max_bytes`.

        ToolErrors name `field`: forbidden (scheme or address refused, on any hop), upstream_error
        (no such host, refused connection, too many redirects), timeout.
        """
        self.policy.check_scheme(url, field=field)
        try:
            request = self.client.build_request("GET", url)
        except (httpx2.InvalidURL, httpx2.UnsupportedProtocol) as exc:
            raise ToolError(f"invalid URL {url!r}: {exc}", field=field) from None
        redirects: list[str] = []
        for _hop in range(self.max_redirects + 1):
            self.policy.check_scheme(str(request.url), field=field)
            response = await self._send(request, redirects, field)
            try:
                if response.next_request is not None:
                    redirects.append(str(request.url))
                    request = response.next_request
                    continue
                body, cut = await read_capped(response, max_bytes)
            except httpx2.TimeoutException:
                raise ToolError(
                    f"{url} sent its body too slowly", code="timeout", field=field, retryable=True
                ) from None
            except httpx2.HTTPError as exc:
                raise ToolError(f"reading {url} failed: {exc}", code="upstream_error", field=field) from None
            finally:
                await response.aclose()
            media_type, charset = _media_type(response.headers.get("content-type", ""))
            return RawDocument(
                url=url,
                final_url=str(request.url),
                status=response.status_code,
                media_type=media_type,
                charset=charset,
                content_language=response.headers.get("content-language"),
                body=body,
                cut=cut,
                redirects=redirects,
            )
        raise ToolError(f"{url} redirected more than {self.max_redirects} times", code="upstream_error", field=field)

    async def _send(self, request: httpx2.Request, redirects: list[str], field: str) -> httpx2.Response:
        target = str(request.url)
        via = f" (redirected from {redirects[0]})" if redirects else ""
        try:
            return await self.client.send(request, stream=True)
        except UnresolvableHost as exc:
            raise ToolError(f"{exc}{via}", code="upstream_error", field=field) from None
        except PolicyRefusal as exc:
            raise ToolError(f"{target}{via} is refused: {exc}", code="forbidden", field=field) from None
        except httpx2.TimeoutException:
            raise ToolError(
                f"{target}{via} did not answer in time", code="timeout", field=field, retryable=True
            ) from None
        except httpx2.HTTPError as exc:
            raise ToolError(
                f"cannot read {target}{via}: {exc}", code="upstream_error", field=field, retryable=True
            ) from None
