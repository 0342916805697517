"""Pytest fixtures over the real test mail system (tests/support/mail.py), shared by test packages.

Import them in a conftest: `from tests.support.mail_env import dovecot, smtp_sink, mail  # noqa: F401`.
The dovecot and SMTP processes live for the session; every test gets fresh users (mailboxes),
so tests never see each other's mail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servers.kit import Domain, ServerSettings, ToolContext, ToolError, error_from_result
from servers.mail.server import create
from servers.storage.server import create as create_storage
from tests.support.hub import DomainsHubCaller
from tests.support.mail import Dovecot, MailUser, SmtpSink

ATTACHMENT_BUCKETS = ("docs", "inbox-files", "notes", "files")


def storage_hub(data_dir: Path) -> DomainsHubCaller:
    """The real storage server, in-process, as what the mail server reaches through `ctx.hub`."""
    storage = create_storage(
        ServerSettings(
            name="storage",
            data_dir=data_dir,
            config={"buckets": [{"name": name, "visibility": "private"} for name in ATTACHMENT_BUCKETS]},
        )
    )
    return DomainsHubCaller({"storage": storage})


@dataclass
class MailEnv:
    """Two fresh mailboxes (alice, bob) on the session's dovecot, plus a domain factory."""

    dovecot: Dovecot
    sink: SmtpSink
    alice: MailUser
    bob: MailUser
    hub: DomainsHubCaller
    domains: list[Domain] = field(default_factory=list)

    @property
    def storage(self) -> Any:
        return self.hub.domains["storage"].service

    async def put_object(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        await self.storage.put(bucket, key, data, content_type=content_type)

    async def object_bytes(self, bucket: str, key: str) -> bytes:
        _record, data = await self.storage.read(bucket, key, 64 * 1024 * 1024)
        return bytes(data)

    def config(self, **overrides: Any) -> dict[str, Any]:
        accounts = [
            self.dovecot.account(self.alice, name="alice", smtp_port=self.sink.port),
            self.dovecot.account(self.bob, name="bob", smtp_port=self.sink.port),
        ]
        return {"accounts": accounts, **overrides}

    def domain(self, config: dict[str, Any] | None = None, *, hub: Any = "default") -> Domain:
        settings = ServerSettings(
            name="mail", config=config or self.config(), hub=self.hub if hub == "default" else hub
        )
        domain = create(settings)
        self.domains.append(domain)
        return domain


async def call(domain: Domain, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """structuredContent of a successful call (fails the test with the error text otherwise)."""
    result = await domain.call(tool, args, ToolContext(tool=tool, request_id="test", hub=domain.hub))
    error = error_from_result(result)
    assert error is None, f"{tool} failed: {error.message if error else ''}"
    structured: dict[str, Any] = result["structuredContent"]
    return structured


async def call_error(domain: Domain, tool: str, args: dict[str, Any]) -> ToolError:
    result = await domain.call(tool, args, ToolContext(tool=tool, request_id="test", hub=domain.hub))
    error = error_from_result(result)
    assert error is not None, f"{tool} unexpectedly succeeded: {result.get('structuredContent')}"
    return error


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot.started() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink(dovecot: Dovecot) -> Iterator[SmtpSink]:
    with SmtpSink.started(dovecot) as sink:
        yield sink


@pytest.fixture
async def mail(dovecot: Dovecot, smtp_sink: SmtpSink, tmp_path: Path) -> AsyncIterator[MailEnv]:
    env = MailEnv(dovecot, smtp_sink, dovecot.add_user(), dovecot.add_user(), storage_hub(tmp_path / "data"))
    try:
        yield env
    finally:
        for domain in env.domains:
            await domain.service.aclose()
        env.storage.close()
