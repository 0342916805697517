"""The mail server's MCP tools, bound to the gateway (contracts in schemas/mail.json)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from servers.kit import Domain, ServerSettings, ToolContext
from servers.mail.config import MailConfig
from servers.mail.gateway import MailGateway

IMAP_TOOLS = ("inbox", "list_folders", "list_messages", "search", "get_message", "mark_seen", "flag", "move", "delete")
SMTP_TOOLS = ("send",)

INSTRUCTIONS = (
    "Email over the configured mailboxes. Start with `mailboxes` (or `inbox` for the newest mail everywhere); "
    "messages are named by mailbox + folder + uid. Read with get_message, find with search, reply with "
    "send(reply_uid=...)."
)


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(MailConfig)
    gateway = MailGateway(config)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    domain = Domain("mail", hub=settings.hub, instructions=INSTRUCTIONS, lifespan=lifespan)
    domain.service = gateway

    @domain.tool("mailboxes")
    async def mailboxes(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.mailboxes(bool(args.get("check", False)))

    @domain.tool("inbox")
    async def inbox(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.inbox(args)

    @domain.tool("list_folders")
    async def list_folders(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.list_folders(args)

    @domain.tool("list_messages")
    async def list_messages(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.list_messages(args)

    @domain.tool("search")
    async def search(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.search(args)

    @domain.tool("get_message")
    async def get_message(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.get_message(args, ctx.hub)

    @domain.tool("send")
    async def send(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.send(args, ctx.hub)

    @domain.tool("mark_seen")
    async def mark_seen(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.set_flag(args, "\\Seen", bool(args.get("seen", True)))

    @domain.tool("flag")
    async def flag(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.set_flag(args, "\\Flagged", bool(args.get("flagged", True)))

    @domain.tool("move")
    async def move(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.move(args)

    @domain.tool("delete")
    async def delete(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return await gateway.delete(args)

    if not gateway.has_imap:
        for name in IMAP_TOOLS:
            domain.hide(name, "no configured mailbox has an IMAP server")
    if not gateway.has_smtp:
        for name in SMTP_TOOLS:
            domain.hide(name, "no configured mailbox has an SMTP server")

    async def health() -> dict[str, Any]:
        report = await gateway.mailboxes(check=True)
        details = {m["name"]: m.get("status", "unchecked") for m in report["mailboxes"]}
        return {"healthy": all(v != "error" for v in details.values()), "details": details}

    domain.health = health
    domain.check_complete()
    return domain
