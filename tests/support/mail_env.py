"""Pytest fixtures over the real test mail system (tests/support/mail.py), shared by test packages.

Import them in a conftest: `from tests.support.mail_env import dovecot, smtp_sink, mail  # noqa: F401`.
The dovecot and SMTP processes live for the session; every test gets fresh users (mailboxes),
so tests never see each other's mail.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from servers.kit import Domain, ServerSettings, ToolContext, ToolError, error_from_result
from servers.mail.server import create
from tests.support.mail import Dovecot, MailUser, SmtpSink


class MemoryHub:
    """A HubCaller double speaking the storage tools' contract, keeping objects in a dict.

    Stands in for the storage server until both live on one branch; the mail server only ever
    sees the `ctx.hub.call_tool` contract, which is what this implements.
    """

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.calls: list[str] = []

    async def call_tool(self, name: str, arguments: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        self.calls.append(name)
        bucket, key = arguments["bucket"], arguments["key"]
        if name == "storage-put_object":
            data = base64.b64decode(arguments["base64"]) if "base64" in arguments else arguments["text"].encode()
            content_type = arguments.get("content_type") or "application/octet-stream"
            self.objects[(bucket, key)] = (data, content_type)
            structured = {
                "bucket": bucket,
                "key": key,
                "etag": f'"{len(data)}"',
                "size": len(data),
                "content_type": content_type,
                "url": f"http://hub.test/storage/{bucket}/{key}",
            }
            return {"content": [], "structuredContent": structured, "isError": False}
        if name == "storage-get_object":
            if (bucket, key) not in self.objects:
                return {
                    "content": [{"type": "text", "text": f"Error: no object {bucket}/{key}"}],
                    "isError": True,
                    "_meta": {"toolmux/error": {"code": "not_found", "message": f"no object {bucket}/{key}"}},
                }
            data, content_type = self.objects[(bucket, key)]
            structured = {
                "bucket": bucket,
                "key": key,
                "content_type": content_type,
                "size": len(data),
                "etag": f'"{len(data)}"',
                "base64": base64.b64encode(data).decode(),
            }
            return {"content": [], "structuredContent": structured, "isError": False}
        raise AssertionError(f"unexpected hub tool {name}")


@dataclass
class MailEnv:
    """Two fresh mailboxes (alice, bob) on the session's dovecot, plus a domain factory."""

    dovecot: Dovecot
    sink: SmtpSink
    alice: MailUser
    bob: MailUser
    hub: MemoryHub = field(default_factory=MemoryHub)
    domains: list[Domain] = field(default_factory=list)

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
async def mail(dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[MailEnv]:
    env = MailEnv(dovecot, smtp_sink, dovecot.add_user(), dovecot.add_user())
    try:
        yield env
    finally:
        for domain in env.domains:
            await domain.service.aclose()
