"""The mail gateway: every tool's logic over the configured accounts (the MCP handlers are thin).

Each read goes to the mail server; nothing about messages is cached or stored here.
"""

from __future__ import annotations

import base64
import binascii
import logging
from datetime import UTC, datetime
from typing import Any

import anyio

from servers.kit import HubCaller, ToolError
from servers.mail import mailstore, storage_link
from servers.mail import message as mime
from servers.mail.compose import Outgoing, OutgoingAttachment, compose, guess_type
from servers.mail.config import Account, MailConfig
from servers.mail.imap_pool import ImapPool, ImapSession
from servers.mail.smtp import SmtpClient

_log = logging.getLogger("toolmux.mail")

DEFAULT_FOLDER = "INBOX"


def _criteria_of(args: dict[str, Any]) -> dict[str, Any]:
    names = ("from", "to", "cc", "subject", "body", "text", "since", "before", "seen", "flagged", "answered")
    return {k: args[k] for k in (*names, "larger", "smaller") if k in args}


class MailGateway:
    def __init__(self, config: MailConfig) -> None:
        self.config = config
        self.accounts: dict[str, Account] = {a.name: a for a in config.accounts}
        self.pools: dict[str, ImapPool] = {a.name: ImapPool(a, config) for a in config.accounts if a.imap}
        self.smtp: dict[str, SmtpClient] = {a.name: SmtpClient(a, config) for a in config.accounts if a.smtp}

    @property
    def has_imap(self) -> bool:
        return bool(self.pools)

    @property
    def has_smtp(self) -> bool:
        return bool(self.smtp)

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()
        for client in self.smtp.values():
            await client.aclose()

    # --- accounts ------------------------------------------------------------------------------
    def account(self, name: str, *, needs: str | None = None, field: str = "mailbox") -> Account:
        account = self.accounts.get(name)
        if account is None:
            known = ", ".join(sorted(self.accounts)) or "(none configured)"
            raise ToolError(f"unknown mailbox {name!r}; mailboxes: {known}", code="not_found", field=field)
        if needs == "imap" and account.imap is None:
            with_imap = ", ".join(sorted(self.pools)) or "(none)"
            raise ToolError(
                f"mailbox {name!r} has no IMAP server configured (it can only send); mailboxes with IMAP: {with_imap}",
                field=field,
            )
        if needs == "smtp" and account.smtp is None:
            with_smtp = ", ".join(sorted(self.smtp)) or "(none)"
            raise ToolError(
                f"mailbox {name!r} has no SMTP server configured (it cannot send); mailboxes with SMTP: {with_smtp}",
                field=field,
            )
        return account

    def pool(self, name: str) -> ImapPool:
        self.account(name, needs="imap")
        return self.pools[name]

    async def mailboxes(self, check: bool) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for account in self.accounts.values():
            out.append(
                {
                    "name": account.name,
                    "address": account.address,
                    "display_name": account.display_name,
                    "description": account.description,
                    "imap": account.imap is not None,
                    "smtp": account.smtp is not None,
                }
            )
        if check:

            async def probe(entry: dict[str, Any]) -> None:
                if not entry["imap"]:
                    entry["status"] = "unchecked"
                    return
                try:
                    await self.pools[entry["name"]].run(lambda s: s.check("NOOP", *s.conn.noop()))
                    entry["status"] = "ok"
                except ToolError as exc:
                    entry["status"], entry["error"] = "error", exc.message

            async with anyio.create_task_group() as tg:
                for entry in out:
                    tg.start_soon(probe, entry)
        return {"mailboxes": out}

    # --- reading -------------------------------------------------------------------------------
    async def inbox(self, args: dict[str, Any]) -> dict[str, Any]:
        names = args.get("mailboxes") or sorted(self.pools)
        for i, name in enumerate(names):
            self.account(name, needs="imap", field=f"mailboxes[{i}]")
        names = list(dict.fromkeys(names))
        folder, limit = args.get("folder", DEFAULT_FOLDER), args.get("limit", 20)
        criteria = {"seen": False} if args.get("unseen_only") else {}
        results: dict[str, list[dict[str, Any]]] = {}
        errors: list[dict[str, Any]] = []

        async def one(name: str) -> None:
            pool = self.pools[name]
            keys, utf8 = mailstore.search_criteria(criteria, literal_plus=False)
            try:
                page = await pool.run(
                    lambda s: mailstore.page(
                        s, folder, mailbox=name, keys=keys, utf8=utf8, limit=limit, before_uid=None
                    )
                )
                results[name] = page["messages"]
            except ToolError as exc:
                errors.append({"mailbox": name, "code": exc.code, "message": exc.message})

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(one, name)
        merged = [m for name in names for m in results.get(name, [])]
        merged.sort(key=_newest_first_key, reverse=True)
        errors.sort(key=lambda e: names.index(e["mailbox"]))
        return {"messages": merged[:limit], "errors": errors}

    async def list_folders(self, args: dict[str, Any]) -> dict[str, Any]:
        name, counts = args["mailbox"], args.get("counts", True)

        def run(session: ImapSession) -> list[dict[str, Any]]:
            listed = mailstore.folders(session)
            for entry in listed:
                if counts and entry["selectable"]:
                    entry["messages"], entry["unseen"] = mailstore.folder_counts(session, entry["name"])
            return listed

        return {"mailbox": name, "folders": await self.pool(name).run(run)}

    async def list_messages(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._page(args, {})

    async def search(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._page(args, _criteria_of(args))

    async def _page(self, args: dict[str, Any], criteria: dict[str, Any]) -> dict[str, Any]:
        name = args["mailbox"]
        pool = self.pool(name)
        folder, limit, before_uid = args.get("folder", DEFAULT_FOLDER), args.get("limit", 20), args.get("before_uid")

        def run(session: ImapSession) -> dict[str, Any]:
            keys, utf8 = mailstore.search_criteria(criteria, literal_plus=session.has("LITERAL+"))
            return mailstore.page(
                session, folder, mailbox=name, keys=keys, utf8=utf8, limit=limit, before_uid=before_uid
            )

        return await pool.run(run)

    async def get_message(self, args: dict[str, Any], hub: HubCaller | None) -> dict[str, Any]:
        name, folder, uid = args["mailbox"], args.get("folder", DEFAULT_FOLDER), args["uid"]
        saves = args.get("save_attachments") or []
        if saves:
            storage_link.require_hub(hub, "save_attachments")
        pool = self.pool(name)
        uidvalidity = args.get("uidvalidity")

        def run(session: ImapSession) -> tuple[bytes, dict[str, Any], int]:
            raw, meta = mailstore.fetch_raw(
                session, folder, uid, uidvalidity=uidvalidity, max_bytes=self.config.max_message_bytes
            )
            if args.get("mark_seen"):
                meta["FLAGS"] = mailstore.store_flag(session, folder, [uid], "\\Seen", True, uidvalidity=None)[0][
                    "flags"
                ]
            return raw, meta, session.uidvalidity

        raw, meta, validity = await pool.run(run)
        parsed = await anyio.to_thread.run_sync(mime.parse_message, raw)
        found = mime.bodies(parsed)
        max_chars = args.get("max_chars", 20000)
        text, source = mime.readable_text(found, args.get("prefer", "plain"))
        text, text_truncated = mime.truncate(text, max_chars)
        out: dict[str, Any] = {
            "mailbox": name,
            "folder": folder,
            "uid": uid,
            "uidvalidity": validity,
            **mime.header_fields(parsed),
            "references": mime.message_ids(parsed, "References"),
            "reply_to": mime.addresses(parsed, "Reply-To"),
            "bcc": mime.addresses(parsed, "Bcc"),
            "received": mime.imap_datetime(_text(meta.get("INTERNALDATE"))),
            **mailstore.flag_fields(meta.get("FLAGS")),
            "size": int(meta.get("RFC822.SIZE") or len(raw)),
            "text": text,
            "text_source": source,
            "text_truncated": text_truncated,
            "has_html": found.html is not None,
            "attachments": [a.describe() for a in found.attachments],
        }
        if args.get("include_html"):
            out["html"], out["html_truncated"] = mime.truncate(found.html, max_chars)
        for i, request in enumerate(saves):
            out["attachments"][request["index"]]["saved"] = await self._save(
                hub,
                mailbox=name,
                uid=uid,
                attachments=found.attachments,
                request=request,
                field=f"save_attachments[{i}]",
            )
        return out

    async def _save(
        self,
        hub: HubCaller | None,
        *,
        mailbox: str,
        uid: int,
        attachments: list[mime.Attachment],
        request: dict[str, Any],
        field: str,
    ) -> dict[str, Any]:
        index = request["index"]
        if index >= len(attachments):
            raise ToolError(
                f"{field}: message UID {uid} has {len(attachments)} attachment(s); no index {index}",
                code="not_found",
                field=f"{field}.index",
            )
        attachment = attachments[index]
        filename = attachment.filename or f"attachment-{index}"
        key = request.get("key") or f"mail/{mailbox}/{uid}/{filename}"
        data = await anyio.to_thread.run_sync(mime.part_bytes, attachment.part)
        return await storage_link.put_object(
            storage_link.require_hub(hub, "save_attachments"),
            bucket=request["bucket"],
            key=key,
            data=data,
            content_type=attachment.content_type,
            field=field,
        )

    # --- changing ------------------------------------------------------------------------------
    async def set_flag(self, args: dict[str, Any], flag: str, on: bool) -> dict[str, Any]:
        name, folder = args["mailbox"], args.get("folder", DEFAULT_FOLDER)
        uids = list(dict.fromkeys(args["uids"]))
        updated = await self.pool(name).run(
            lambda s: mailstore.store_flag(s, folder, uids, flag, on, uidvalidity=args.get("uidvalidity"))
        )
        return {"mailbox": name, "folder": folder, "updated": updated}

    async def move(self, args: dict[str, Any]) -> dict[str, Any]:
        name, folder, to_folder = args["mailbox"], args.get("folder", DEFAULT_FOLDER), args["to_folder"]
        uids = list(dict.fromkeys(args["uids"]))
        mapping = await self.pool(name).run(
            lambda s: mailstore.move(s, folder, uids, to_folder, uidvalidity=args.get("uidvalidity")),
            idempotent=False,
        )
        moved = [{"uid": u, "new_uid": mapping.get(u)} for u in uids]
        return {"mailbox": name, "folder": folder, "to_folder": to_folder, "moved": moved}

    async def delete(self, args: dict[str, Any]) -> dict[str, Any]:
        name, folder = args["mailbox"], args.get("folder", DEFAULT_FOLDER)
        account = self.account(name, needs="imap")
        assert account.imap is not None
        uids = list(dict.fromkeys(args["uids"]))
        permanent = bool(args.get("permanent", False))
        trash_folder = account.imap.trash_folder
        moved_to = await self.pool(name).run(
            lambda s: mailstore.delete(
                s, folder, uids, permanent=permanent, trash_folder=trash_folder, uidvalidity=args.get("uidvalidity")
            ),
            idempotent=False,
        )
        return {
            "mailbox": name,
            "folder": folder,
            "deleted": uids,
            "moved_to": moved_to,
            "permanent": moved_to is None,
        }

    # --- sending -------------------------------------------------------------------------------
    async def send(self, args: dict[str, Any], hub: HubCaller | None) -> dict[str, Any]:
        name = args["mailbox"]
        account = self.account(name, needs="smtp")
        thread = None
        if args.get("reply_uid") is not None:
            reply_folder, reply_uid = args.get("reply_folder", DEFAULT_FOLDER), args["reply_uid"]
            thread = await self.pool(name).run(lambda s: mailstore.reply_headers(s, reply_folder, reply_uid))
        attachments = await self._outgoing_attachments(args.get("attachments") or [], hub)
        outgoing = compose(account, args, attachments=attachments, thread=thread)
        data = outgoing.as_bytes()
        if len(data) > self.config.max_send_bytes:
            raise ToolError(
                f"the message is {len(data)} bytes, over this server's max_send_bytes ({self.config.max_send_bytes})",
                code="too_large",
                field="attachments" if attachments else "text",
            )
        refused = await self.smtp[name].send(outgoing.sender, outgoing.recipients, data)
        saved_to = await self._save_sent(account, outgoing, data)
        return {
            "mailbox": name,
            "message_id": outgoing.message_id,
            "accepted": [r for r in outgoing.recipients if r not in refused],
            "refused": [{"address": addr, "reason": f"{code} {_text(msg)}"} for addr, (code, msg) in refused.items()],
            "size": len(data),
            "saved_to": saved_to,
        }

    async def _save_sent(self, account: Account, outgoing: Outgoing, data: bytes) -> str | None:
        if account.imap is None or not account.imap.save_sent:
            return None
        configured = account.imap.sent_folder

        def run(session: ImapSession) -> str | None:
            folder = mailstore.find_special(session, "sent", configured)
            if folder is not None:
                mailstore.append(session, folder, data)
            return folder

        try:
            return await self.pools[account.name].run(run, idempotent=False)
        except ToolError as exc:
            # The message went out; failing the call now would invite a duplicate send.
            _log.warning("mailbox %s: sent %s but could not file it: %s", account.name, outgoing.message_id, exc)
            return None

    async def _outgoing_attachments(
        self, items: list[dict[str, Any]], hub: HubCaller | None
    ) -> list[OutgoingAttachment]:
        out: list[OutgoingAttachment] = []
        total = 0
        for i, item in enumerate(items):
            field = f"attachments[{i}]"
            if item.get("bucket") or item.get("key"):
                if not (item.get("bucket") and item.get("key")):
                    raise ToolError(f"{field}: give both 'bucket' and 'key' of the storage object", field=field)
                data, stored_type = await storage_link.get_object(
                    storage_link.require_hub(hub, field), bucket=item["bucket"], key=item["key"], field=field
                )
                filename = item.get("filename") or str(item["key"]).rsplit("/", 1)[-1] or "attachment"
                content_type = guess_type(filename, item.get("content_type") or stored_type)
            elif item.get("text") is not None or item.get("base64") is not None:
                if not item.get("filename"):
                    raise ToolError(f"{field}: an inline attachment needs a 'filename'", field=f"{field}.filename")
                filename = item["filename"]
                if item.get("base64") is not None:
                    try:
                        data = base64.b64decode(item["base64"], validate=True)
                    except (binascii.Error, ValueError):
                        raise ToolError(f"{field}: 'base64' is not valid base64", field=f"{field}.base64") from None
                else:
                    data = str(item["text"]).encode("utf-8")
                content_type = guess_type(filename, item.get("content_type"))
            else:
                raise ToolError(
                    f"{field}: give a storage object ('bucket' and 'key') or inline content ('text' or 'base64')",
                    field=field,
                )
            total += len(data)
            if total > self.config.max_send_bytes:
                raise ToolError(
                    f"attachments exceed this server's max_send_bytes ({self.config.max_send_bytes})",
                    code="too_large",
                    field=field,
                )
            out.append(OutgoingAttachment(filename=filename, content_type=content_type, data=data))
        return out


def _newest_first_key(summary: dict[str, Any]) -> datetime:
    for field in ("received", "date"):
        value = summary.get(field)
        if value:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
