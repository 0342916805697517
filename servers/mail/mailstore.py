"""IMAP operations on one logged-in session (blocking; the pool runs them in worker threads).

Messages are always named by UID within a folder, never by sequence number. Every function
selects the folder it works on, so a pooled session's previous state never matters.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from servers.kit import ToolError
from servers.mail import imap_wire as wire
from servers.mail import message as mime
from servers.mail.imap_pool import ImapCommandFailed, ImapSession, require_uidvalidity

SPECIAL_USE = {
    "\\TRASH": "trash",
    "\\SENT": "sent",
    "\\DRAFTS": "drafts",
    "\\JUNK": "junk",
    "\\ARCHIVE": "archive",
    "\\ALL": "all",
    "\\FLAGGED": "flagged",
}
# Names servers without SPECIAL-USE give their trash and sent folders.
COMMON_NAMES = {
    "trash": ("Trash", "Deleted Items", "Deleted Messages", "INBOX.Trash", "[Gmail]/Trash", "Bin"),
    "sent": ("Sent", "Sent Items", "Sent Messages", "INBOX.Sent", "[Gmail]/Sent Mail"),
}
_SUMMARY_HEADERS = " ".join(mime.SUMMARY_HEADERS)
_SUMMARY_ITEMS = f"(UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({_SUMMARY_HEADERS})])"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_FOLDERS_IN_ERROR = 40


# --- folders -------------------------------------------------------------------------------------
def folders(session: ImapSession) -> list[dict[str, Any]]:
    session.reset()
    data = session.check("LIST", *session.conn.list('""', '"*"'))
    out = []
    for flags, delimiter, name in wire.list_entries(data):
        upper = {f.upper() for f in flags}
        special = next((SPECIAL_USE[f] for f in upper if f in SPECIAL_USE), None)
        if special is None and name.upper() == "INBOX":
            special = "inbox"
        out.append(
            {
                "name": name,
                "delimiter": delimiter,
                "special_use": special,
                "selectable": "\\NOSELECT" not in upper and "\\NONEXISTENT" not in upper,
            }
        )
    out.sort(key=lambda f: (f["special_use"] != "inbox", str(f["name"]).casefold()))
    return out


def folder_counts(session: ImapSession, name: str) -> tuple[int | None, int | None]:
    try:
        _, untagged = session.simple("STATUS", wire.folder_arg(name), "(MESSAGES UNSEEN)")
    except ImapCommandFailed:
        return None, None
    values = wire.parse(untagged.get("STATUS", []))
    for item in values:
        if isinstance(item, list):
            counts = {str(item[i]).upper(): item[i + 1] for i in range(0, len(item) - 1, 2)}
            return int(counts.get("MESSAGES", 0)), int(counts.get("UNSEEN", 0))
    return None, None


def find_special(session: ImapSession, use: str, configured: str | None) -> str | None:
    """The folder serving `use` ("trash"/"sent"): configured name, SPECIAL-USE flag, common name."""
    if configured:
        return configured
    listed = folders(session)
    for entry in listed:
        if entry["special_use"] == use:
            return str(entry["name"])
    names = {str(e["name"]).lower(): str(e["name"]) for e in listed if e["selectable"]}
    for candidate in COMMON_NAMES[use]:
        if candidate.lower() in names:
            return names[candidate.lower()]
    return None


def select(session: ImapSession, folder: str, *, readonly: bool, uidvalidity: int | None = None) -> None:
    """Select `folder`; a folder that does not exist is a not_found error listing those that do."""
    try:
        session.select(folder, readonly=readonly)
    except ImapCommandFailed as exc:
        if "NONEXISTENT" in exc.text.upper() or "DOESN'T EXIST" in exc.text.upper() or "NOT EXIST" in exc.text.upper():
            known = [str(f["name"]) for f in folders(session) if f["selectable"]]
            shown = ", ".join(known[:MAX_FOLDERS_IN_ERROR]) + (" ..." if len(known) > MAX_FOLDERS_IN_ERROR else "")
            raise ToolError(
                f"folder {folder!r} does not exist; folders: {shown}", code="not_found", field="folder"
            ) from None
        raise
    require_uidvalidity(session, uidvalidity)


# --- listing and searching -------------------------------------------------------------------------
def _imap_date(value: str) -> str:
    day = date.fromisoformat(value)
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def search_criteria(criteria: dict[str, Any], *, literal_plus: bool) -> tuple[list[bytes], bool]:
    """IMAP SEARCH keys for the tool's structured criteria; (keys, needs CHARSET UTF-8)."""
    keys: list[bytes] = []
    utf8 = False
    for field, key in (("from", b"FROM"), ("to", b"TO"), ("cc", b"CC"), ("subject", b"SUBJECT")):
        if criteria.get(field):
            value = str(criteria[field])
            utf8 |= not value.isascii()
            keys += [key, _astring(value, field, literal_plus)]
    for field, key in (("body", b"BODY"), ("text", b"TEXT")):
        if criteria.get(field):
            value = str(criteria[field])
            utf8 |= not value.isascii()
            keys += [key, _astring(value, field, literal_plus)]
    for field, key in (("since", b"SINCE"), ("before", b"BEFORE")):
        if criteria.get(field):
            keys += [key, _imap_date(criteria[field]).encode()]
    for field, yes, no in (
        ("seen", b"SEEN", b"UNSEEN"),
        ("flagged", b"FLAGGED", b"UNFLAGGED"),
        ("answered", b"ANSWERED", b"UNANSWERED"),
    ):
        if criteria.get(field) is not None:
            keys.append(yes if criteria[field] else no)
    for field, key in (("larger", b"LARGER"), ("smaller", b"SMALLER")):
        if criteria.get(field) is not None:
            keys += [key, str(int(criteria[field])).encode()]
    return keys or [b"ALL"], utf8


def _astring(value: str, field: str, literal_plus: bool) -> bytes:
    try:
        return wire.astring(value, literal_plus=literal_plus)
    except ValueError as exc:
        raise ToolError(f"field '{field}': {exc}", field=field) from None


def search_uids(session: ImapSession, keys: list[bytes], utf8: bool, before_uid: int | None) -> list[int]:
    if before_uid is not None:
        if before_uid <= 1:
            return []
        keys = [b"UID", f"1:{before_uid - 1}".encode(), *keys]
    args: list[Any] = ["CHARSET", "UTF-8", *keys] if utf8 else list(keys)
    session.reset()
    data = session.uid("SEARCH", *args)
    found = b" ".join(d for d in data if isinstance(d, bytes)).split()
    uids = sorted((int(u) for u in found if u.isdigit()), reverse=True)
    if before_uid is not None:
        uids = [u for u in uids if u < before_uid]
    return uids


def summaries(session: ImapSession, uids: list[int], *, mailbox: str) -> list[dict[str, Any]]:
    """Header-level views of `uids` in the selected folder, in the order given."""
    if not uids:
        return []
    session.reset()
    data = session.uid("FETCH", wire.uid_set(uids), _SUMMARY_ITEMS)
    by_uid: dict[int, dict[str, Any]] = {}
    for record in wire.fetch_items(data):
        if "UID" not in record:
            continue  # an unsolicited FETCH about another message
        uid = int(record["UID"])
        headers = mime.parse_headers(wire.body_section(record) or b"")
        by_uid[uid] = {
            "mailbox": mailbox,
            "folder": session.selected,
            "uid": uid,
            **mime.header_fields(headers),
            "received": mime.imap_datetime(_text(record.get("INTERNALDATE"))),
            **flag_fields(record.get("FLAGS")),
            "size": int(record.get("RFC822.SIZE") or 0),
            "has_attachments": mime.has_attachment(record.get("BODYSTRUCTURE")),
        }
    return [by_uid[u] for u in uids if u in by_uid]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def flag_fields(flags: Any) -> dict[str, Any]:
    names = [str(f) for f in flags] if isinstance(flags, list) else []
    upper = {f.upper() for f in names}
    return {
        "flags": names,
        "seen": "\\SEEN" in upper,
        "flagged": "\\FLAGGED" in upper,
        "answered": "\\ANSWERED" in upper,
    }


def page(
    session: ImapSession,
    folder: str,
    *,
    mailbox: str,
    keys: list[bytes],
    utf8: bool,
    limit: int,
    before_uid: int | None,
) -> dict[str, Any]:
    """Newest-first page of the messages matching `keys` (all of them for `ALL`)."""
    select(session, folder, readonly=True)
    uids = search_uids(session, keys, utf8, before_uid)
    chosen = uids[:limit]
    more = len(uids) > limit
    return {
        "mailbox": mailbox,
        "folder": folder,
        "uidvalidity": session.uidvalidity,
        "total": len(uids) if before_uid is None else None,
        "messages": summaries(session, chosen, mailbox=mailbox),
        "next_before_uid": chosen[-1] if more and chosen else None,
    }


# --- one message -----------------------------------------------------------------------------------
def fetch_raw(
    session: ImapSession, folder: str, uid: int, *, uidvalidity: int | None, max_bytes: int
) -> tuple[bytes, dict[str, Any]]:
    """(raw RFC 5322 bytes, FETCH record with FLAGS/INTERNALDATE/size) of one message."""
    select(session, folder, readonly=True, uidvalidity=uidvalidity)
    session.reset()
    fetched = wire.fetch_items(session.uid("FETCH", str(uid), "(UID FLAGS INTERNALDATE RFC822.SIZE)"))
    meta = [r for r in fetched if str(r.get("UID")) == str(uid)]
    if not meta:
        raise ToolError(f"no message with UID {uid} in folder {folder!r}", code="not_found", field="uid")
    size = int(meta[0].get("RFC822.SIZE") or 0)
    if size > max_bytes:
        raise ToolError(
            f"message UID {uid} is {size} bytes, over this server's max_message_bytes ({max_bytes})",
            code="too_large",
            field="uid",
        )
    session.reset()
    records = [r for r in wire.fetch_items(session.uid("FETCH", str(uid), "(UID BODY.PEEK[])")) if "UID" in r]
    raw = wire.body_section(records[0]) if records else None
    if raw is None:
        raise ToolError(f"message UID {uid} vanished while being read", code="not_found", field="uid")
    return raw, meta[0]


def existing(session: ImapSession, uids: list[int]) -> list[int]:
    session.reset()
    data = session.uid("SEARCH", "UID", wire.uid_set(uids))
    found = {int(u) for u in b" ".join(d for d in data if isinstance(d, bytes)).split() if u.isdigit()}
    return [u for u in uids if u in found]


def require_existing(session: ImapSession, uids: list[int], folder: str) -> None:
    missing = sorted(set(uids) - set(existing(session, uids)))
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        raise ToolError(f"no message with UID {shown} in folder {folder!r}", code="not_found", field="uids")


def store_flag(
    session: ImapSession, folder: str, uids: list[int], flag: str, on: bool, *, uidvalidity: int | None
) -> list[dict[str, Any]]:
    select(session, folder, readonly=False, uidvalidity=uidvalidity)
    require_existing(session, uids, folder)
    session.reset()
    data = session.uid("STORE", wire.uid_set(uids), "+FLAGS" if on else "-FLAGS", f"({flag})")
    records = {int(r["UID"]): r for r in wire.fetch_items(data) if "UID" in r}
    if len(records) < len(set(uids)):  # some servers stay silent for flags that did not change
        session.reset()
        fetched = session.uid("FETCH", wire.uid_set(uids), "(UID FLAGS)")
        records.update({int(r["UID"]): r for r in wire.fetch_items(fetched) if "UID" in r})
    return [{"uid": u, **flag_fields(records.get(u, {}).get("FLAGS"))} for u in sorted(set(uids))]


def _copyuid(session: ImapSession, tagged: list[Any]) -> dict[int, int]:
    """Old UID -> new UID from a COPYUID response code (RFC 4315), when the server sent one."""
    texts = [d.decode("utf-8", "replace") for d in tagged if isinstance(d, bytes)]
    codes = [d.decode() if isinstance(d, bytes) else str(d) for d in session.conn.untagged_responses.get("COPYUID", [])]
    for text in texts:
        if text.upper().startswith("[COPYUID "):
            codes.append(text[9 : text.index("]")])
    for code in codes:
        parts = code.split()
        if len(parts) == 3:
            return dict(zip(_expand(parts[1]), _expand(parts[2]), strict=False))
    return {}


def _expand(uid_set: str) -> list[int]:
    out: list[int] = []
    for piece in uid_set.split(","):
        if ":" in piece:
            a, b = (int(x) for x in piece.split(":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        elif piece.isdigit():
            out.append(int(piece))
    return out


def move(
    session: ImapSession, folder: str, uids: list[int], to_folder: str, *, uidvalidity: int | None
) -> dict[int, int | None]:
    """Move `uids` to `to_folder`; old UID -> new UID.

    MOVE where the server has it, else COPY + \\Deleted + UID EXPUNGE (UIDPLUS). A server with
    neither is refused: a plain EXPUNGE would also remove every message another client flagged.
    """
    if to_folder == folder:
        raise ToolError("to_folder is the folder the messages are already in", field="to_folder")
    if not session.has("MOVE"):
        require_uid_expunge(session, "move")
    select(session, folder, readonly=False, uidvalidity=uidvalidity)
    require_existing(session, uids, folder)
    uid_arg = wire.uid_set(uids)
    target = wire.folder_arg(to_folder).decode("ascii")
    session.reset()
    try:
        if session.has("MOVE"):
            typ, tagged = session.conn.uid("MOVE", uid_arg, target)
            session.check("UID MOVE", typ, tagged)
        else:
            typ, tagged = session.conn.uid("COPY", uid_arg, target)
            session.check("UID COPY", typ, tagged)
            mapping = _copyuid(session, tagged)
            expunge(session, uids)
            return {u: mapping.get(u) for u in uids}
    except ImapCommandFailed as exc:
        if "TRYCREATE" in exc.text.upper() or "NONEXISTENT" in exc.text.upper():
            raise ToolError(f"folder {to_folder!r} does not exist", code="not_found", field="to_folder") from None
        raise
    mapping = _copyuid(session, tagged)
    return {u: mapping.get(u) for u in uids}


def require_uid_expunge(session: ImapSession, operation: str) -> None:
    """Refuse, before anything changes, where only a folder-wide EXPUNGE could remove named messages."""
    if not session.has("UIDPLUS"):
        needs = "MOVE or UIDPLUS" if operation == "move" else "UIDPLUS"
        raise ToolError(
            f"this IMAP server lacks {needs}: {operation} would have to expunge the whole folder, "
            "removing messages other clients flagged \\Deleted, so it is refused",
            code="unsupported",
            data={"missing_capability": needs.split(" or ")},
        )


def expunge(session: ImapSession, uids: list[int]) -> None:
    """Flag `uids` \\Deleted and remove only them (UID EXPUNGE; refused without UIDPLUS)."""
    require_uid_expunge(session, "delete")
    uid_arg = wire.uid_set(uids)
    session.reset()
    session.uid("STORE", uid_arg, "+FLAGS.SILENT", "(\\Deleted)")
    session.reset()
    session.uid("EXPUNGE", uid_arg)


def delete(
    session: ImapSession,
    folder: str,
    uids: list[int],
    *,
    permanent: bool,
    trash_folder: str | None,
    uidvalidity: int | None,
) -> str | None:
    """Move `uids` to the trash folder, or remove them for good; returns the trash folder used."""
    trash = None if permanent else find_special(session, "trash", trash_folder)
    if not permanent and trash is None:
        raise ToolError(
            "this account has no Trash folder; pass permanent=true to delete for good "
            "(or set imap.trash_folder in the config)",
            code="conflict",
            field="permanent",
        )
    if trash is not None and trash != folder:
        move(session, folder, uids, trash, uidvalidity=uidvalidity)
        return trash
    select(session, folder, readonly=False, uidvalidity=uidvalidity)
    require_existing(session, uids, folder)
    expunge(session, uids)
    return None


def append(session: ImapSession, folder: str, raw: bytes, flags: str = "(\\Seen)") -> None:
    session.reset()
    session.check("APPEND", *session.conn.append(wire.folder_arg(folder).decode(), flags, None, raw))


def reply_headers(session: ImapSession, folder: str, uid: int) -> dict[str, Any]:
    """What a reply needs from the original: ids for threading, subject, whom to answer."""
    select(session, folder, readonly=True)
    session.reset()
    items = "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID REFERENCES IN-REPLY-TO SUBJECT FROM REPLY-TO)])"
    records = [r for r in wire.fetch_items(session.uid("FETCH", str(uid), items)) if str(r.get("UID")) == str(uid)]
    if not records:
        raise ToolError(f"no message with UID {uid} in folder {folder!r}", code="not_found", field="reply_uid")
    headers = mime.parse_headers(wire.body_section(records[0]) or b"")
    reply_to = mime.addresses(headers, "Reply-To") or mime.addresses(headers, "From")
    return {
        "message_id": mime.header_text(headers, "Message-ID"),
        "references": mime.message_ids(headers, "References"),
        "subject": mime.header_text(headers, "Subject"),
        "reply_to": reply_to,
    }
