"""web-fetch obeys the network policy shared with the browser: on every hop, after resolution, pinned."""

from __future__ import annotations

import ipaddress

import pytest

from servers.kit import Domain
from servers.kit.netpolicy import HostPolicyConfig, IPAddress, NetworkPolicy
from servers.web.netclient import PolicyClient
from tests.servers.web.conftest import fetch, fetch_error, web_config, web_server
from tests.servers.web.site import Site

pytestmark = pytest.mark.anyio


async def test_loopback_is_refused_when_it_is_not_allow_listed(site: Site) -> None:
    before = site.hits.get("/notes.txt", 0)
    async with web_server({}) as web:
        error = await fetch_error(web, f"{site.url}/notes.txt")

    assert error["code"] == "forbidden" and error["field"] == "url"
    assert site.hits.get("/notes.txt", 0) == before


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/iam/", "http://[::ffff:169.254.169.254]/", "http://10.0.0.1/"],
)
async def test_a_redirect_to_a_metadata_or_private_address_is_refused(web: Domain, site: Site, target: str) -> None:
    error = await fetch_error(web, f"{site.url}/redirect?to={target}")

    assert error["code"] == "forbidden" and error["field"] == "url"


async def test_a_redirect_to_an_unlisted_loopback_service_never_reaches_it(web: Domain, site: Site) -> None:
    hops = f"{site.url}/redirect?to={site.url}/redirect%3Fto%3D{site.secret_url}/latest/meta-data"
    error = await fetch_error(web, hops)

    assert error["code"] == "forbidden"
    assert site.secret_hits == []


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/"])
async def test_a_redirect_to_another_scheme_is_refused(web: Domain, site: Site, target: str) -> None:
    error = await fetch_error(web, f"{site.url}/redirect?to={target}")

    assert error["code"] == "forbidden" and error["field"] == "url"


async def test_allowed_redirects_are_followed_and_reported(web: Domain, site: Site) -> None:
    page = await fetch(web, f"{site.url}/redirect?to=/redirect%3Fto%3D/notes.txt%26status%3D301")

    assert page["final_url"] == f"{site.url}/notes.txt"
    assert page["redirects"] == [
        f"{site.url}/redirect?to=/redirect%3Fto%3D/notes.txt%26status%3D301",
        f"{site.url}/redirect?to=/notes.txt&status=301",
    ]
    assert page["content"] == "first line\nsecond line\n"


async def test_too_many_redirects_are_an_error(site: Site) -> None:
    async with web_server(web_config(fetch={"max_redirects": 1})) as web:
        error = await fetch_error(web, f"{site.url}/redirect?to=/redirect%3Fto%3D/notes.txt")

    assert error["code"] == "upstream_error" and error["field"] == "url"


class RebindingPolicy(NetworkPolicy):
    """A host whose DNS answer changes: the allow-listed loopback first, a private address after."""

    def __init__(self) -> None:
        allow = HostPolicyConfig(allow_hosts=["127.0.0.1"])
        super().__init__(allow, subject="the web server", allow_setting="network.allow_hosts")
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if host != "rebind.test":
            return await super().resolve(host, port)
        self.lookups += 1
        return [ipaddress.ip_address("127.0.0.1" if self.lookups == 1 else "10.9.9.9")]


async def test_the_connection_goes_to_the_address_that_was_checked(site: Site) -> None:
    # rebind.test resolves nowhere for the system resolver (.test is reserved): the fetch can only
    # succeed if the client connects to the address the policy checked, without a second lookup.
    policy = RebindingPolicy()
    client = PolicyClient(policy, user_agent="test", timeout_s=5, connect_timeout_s=5, max_redirects=0)
    port = site.url.rsplit(":", 1)[1]
    try:
        document = await client.get(f"http://rebind.test:{port}/notes.txt", max_bytes=1000)
    finally:
        await client.aclose()

    assert document.body == b"first line\nsecond line\n"
    assert policy.lookups == 1
    assert client.backend.connected[-1] == ("rebind.test", "127.0.0.1")
