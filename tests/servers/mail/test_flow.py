"""End to end against a real dovecot and a real SMTP receiver: send, find, read, file, delete."""

from __future__ import annotations

import base64
import smtplib
from email import message_from_bytes
from email import policy as email_policy

import anyio
import anyio.to_thread
import pytest

from tests.support.mail import SmtpSink
from tests.support.mail_env import MailEnv, call, call_error

pytestmark = pytest.mark.anyio


async def deliver_via_smtp(sink: SmtpSink, to: str, raw: bytes) -> None:
    """Hand a raw message to the SMTP receiver, as another mail server on the internet would."""

    def run() -> None:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as client:
            client.sendmail("outside@elsewhere.test", [to], raw)

    await anyio.to_thread.run_sync(run)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("ascii")


async def test_sent_message_is_found_by_search_and_read_back(mail: MailEnv) -> None:
    domain = mail.domain()
    sent = await call(
        domain,
        "send",
        {
            "mailbox": "alice",
            "to": [f"Bob Builder <{mail.bob.address}>"],
            "subject": "Quarterly numbers ü",
            "text": "Revenue went up.\nSee you Monday.",
        },
    )
    assert sent["accepted"] == [mail.bob.address] and sent["refused"] == []

    found = await call(domain, "search", {"mailbox": "bob", "subject": "quarterly", "from": mail.alice.address})
    assert found["total"] == 1
    summary = found["messages"][0]
    assert summary["subject"] == "Quarterly numbers ü"
    assert summary["message_id"] == sent["message_id"]
    assert summary["seen"] is False

    message = await call(domain, "get_message", {"mailbox": "bob", "uid": summary["uid"]})
    assert message["text"] == "Revenue went up.\nSee you Monday."
    assert message["text_source"] == "plain"
    assert message["from"] == {"name": None, "address": mail.alice.address}
    assert message["to"] == [{"name": "Bob Builder", "address": mail.bob.address}]
    assert message["seen"] is False  # reading does not mark it seen unless asked


async def test_search_criteria_narrow_results_and_non_ascii_terms_match(mail: MailEnv) -> None:
    domain = mail.domain()
    for subject, body in (("Grüße aus Köln", "Der Dom ist schön"), ("Lunch", "Pizza at noon")):
        await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": subject, "text": body})
    by_subject = await call(domain, "search", {"mailbox": "bob", "subject": "Köln"})
    assert [m["subject"] for m in by_subject["messages"]] == ["Grüße aus Köln"]
    by_both = await call(domain, "search", {"mailbox": "bob", "subject": "Grüße", "body": "schön"})
    assert by_both["total"] == 1
    assert (await call(domain, "search", {"mailbox": "bob", "body": "pizza"}))["total"] == 1
    assert (await call(domain, "search", {"mailbox": "bob", "text": "nothing-like-this"}))["total"] == 0
    assert (await call(domain, "search", {"mailbox": "bob", "seen": False, "since": "2000-01-01"}))["total"] == 2
    assert (await call(domain, "search", {"mailbox": "bob", "before": "2000-01-01"}))["total"] == 0
    assert (await call(domain, "search", {"mailbox": "bob", "larger": 10_000_000}))["total"] == 0


async def test_html_only_message_is_read_as_reader_text(mail: MailEnv) -> None:
    raw = crlf(
        f"""From: Shop <shop@elsewhere.test>
To: {mail.bob.address}
Subject: Your order has shipped
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><head><style>p {{color: red}}</style></head><body>
<div style=3D"display:none">Preheader you should not see</div>
<h1>Order #42</h1><p>Hi Bob,<br>your parcel is on its way.</p>
<ul><li>Coffee beans</li><li>Grinder</li></ul>
<p>Track it <a href=3D"https://track.example/42">here</a>.</p>
<script>track()</script></body></html>
"""
    )
    await deliver_via_smtp(mail.sink, mail.bob.address, raw)
    domain = mail.domain()
    listing = await call(domain, "list_messages", {"mailbox": "bob"})
    uid = listing["messages"][0]["uid"]
    message = await call(domain, "get_message", {"mailbox": "bob", "uid": uid, "include_html": True})
    assert message["text_source"] == "html"
    assert message["text"] == (
        "Order #42\n\nHi Bob,\nyour parcel is on its way.\n\n- Coffee beans\n- Grinder\n\n"
        "Track it here <https://track.example/42>."
    )
    assert "<h1>" in message["html"] and message["has_html"] is True


async def test_non_utf8_charsets_in_headers_bodies_and_filenames_are_decoded(mail: MailEnv) -> None:
    body = "Привет, Боб! Встреча в среду.".encode("koi8-r")
    attachment = base64.b64encode("Lebenslauf für Zoë".encode("iso-8859-1")).decode()
    raw = (
        crlf(
            f"""From: =?koi8-r?B?{base64.b64encode("Анна".encode("koi8-r")).decode()}?= <anna@elsewhere.test>
To: {mail.bob.address}
Subject: =?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=koi8-r
Content-Transfer-Encoding: 8bit

"""
        )
        + body
        + crlf(
            f"""
--b1
Content-Type: text/plain; charset=iso-8859-1
Content-Disposition: attachment; filename*=iso-8859-1''r%E9sum%E9.txt
Content-Transfer-Encoding: base64

{attachment}
--b1--
"""
        )
    )
    await deliver_via_smtp(mail.sink, mail.bob.address, raw)
    domain = mail.domain()
    summary = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]
    assert summary["subject"] == "Grüße aus Köln"
    assert summary["from"] == {"name": "Анна", "address": "anna@elsewhere.test"}
    assert summary["has_attachments"] is True
    message = await call(domain, "get_message", {"mailbox": "bob", "uid": summary["uid"]})
    assert message["text"] == "Привет, Боб! Встреча в среду."
    assert message["attachments"] == [
        {
            "index": 0,
            "filename": "résumé.txt",
            "content_type": "text/plain",
            "size": len("Lebenslauf für Zoë"),
            "inline": False,
            "content_id": None,
        }
    ]


async def test_mislabelled_charset_falls_back_instead_of_garbling(mail: MailEnv) -> None:
    raw = crlf(f"From: x@elsewhere.test\nTo: {mail.bob.address}\nSubject: label\n") + (
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me\r\n"
    )
    mail.bob.deliver(raw)
    domain = mail.domain()
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    assert (await call(domain, "get_message", {"mailbox": "bob", "uid": uid}))["text"] == "Café crème"


async def test_attachment_from_storage_is_sent_listed_and_saved_back_to_storage(mail: MailEnv) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    await mail.put_object("docs", "reports/q3.pdf", pdf, "application/pdf")
    domain = mail.domain()
    await call(
        domain,
        "send",
        {
            "mailbox": "alice",
            "to": [mail.bob.address],
            "subject": "Report",
            "text": "Attached.",
            "attachments": [
                {"bucket": "docs", "key": "reports/q3.pdf"},
                {"filename": "notes.txt", "text": "remember the milk"},
            ],
        },
    )
    summary = (await call(domain, "search", {"mailbox": "bob", "subject": "Report"}))["messages"][0]
    assert summary["has_attachments"] is True
    message = await call(
        domain,
        "get_message",
        {
            "mailbox": "bob",
            "uid": summary["uid"],
            "save_attachments": [
                {"index": 0, "bucket": "inbox-files"},
                {"index": 1, "bucket": "notes", "key": "n.txt"},
            ],
        },
    )
    first, second = message["attachments"]
    assert (first["filename"], first["content_type"], first["size"]) == ("q3.pdf", "application/pdf", len(pdf))
    assert first["saved"]["key"] == f"mail/bob/{summary['uid']}/q3.pdf"
    # A private bucket's URL is presigned: the object path, then the signature.
    assert first["saved"]["url"].split("?")[0].endswith(first["saved"]["key"])
    assert await mail.object_bytes("inbox-files", first["saved"]["key"]) == pdf
    assert second["filename"] == "notes.txt"
    assert await mail.object_bytes("notes", "n.txt") == b"remember the milk"
    assert message["text"] == "Attached."


async def test_seen_flag_move_and_delete_change_the_real_mailbox(mail: MailEnv) -> None:
    domain = mail.domain()
    for subject in ("one", "two"):
        await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": subject, "text": "x"})
    listing = await call(domain, "list_messages", {"mailbox": "bob"})
    uids = {m["subject"]: m["uid"] for m in listing["messages"]}

    seen = await call(domain, "mark_seen", {"mailbox": "bob", "uids": [uids["one"]]})
    assert seen["updated"][0]["seen"] is True
    unseen = await call(domain, "search", {"mailbox": "bob", "seen": False})
    assert [m["subject"] for m in unseen["messages"]] == ["two"]
    await call(domain, "mark_seen", {"mailbox": "bob", "uids": [uids["one"]], "seen": False})
    assert (await call(domain, "search", {"mailbox": "bob", "seen": False}))["total"] == 2

    flagged = await call(domain, "flag", {"mailbox": "bob", "uids": [uids["two"]]})
    assert flagged["updated"] == [
        {"uid": uids["two"], "flags": flagged["updated"][0]["flags"], "seen": False, "flagged": True, "answered": False}
    ]
    assert [m["subject"] for m in (await call(domain, "search", {"mailbox": "bob", "flagged": True}))["messages"]] == [
        "two"
    ]

    moved = await call(domain, "move", {"mailbox": "bob", "uids": [uids["one"]], "to_folder": "Sent"})
    new_uid = moved["moved"][0]["new_uid"]
    assert isinstance(new_uid, int)
    assert [m["subject"] for m in (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"]] == ["two"]
    in_sent = await call(domain, "get_message", {"mailbox": "bob", "folder": "Sent", "uid": new_uid})
    assert in_sent["subject"] == "one"

    trashed = await call(domain, "delete", {"mailbox": "bob", "folder": "Sent", "uids": [new_uid]})
    assert trashed["moved_to"] == "Trash" and trashed["permanent"] is False
    trash = await call(domain, "list_messages", {"mailbox": "bob", "folder": "Trash"})
    assert [m["subject"] for m in trash["messages"]] == ["one"]

    gone = await call(domain, "delete", {"mailbox": "bob", "folder": "Trash", "uids": [trash["messages"][0]["uid"]]})
    assert gone["permanent"] is True and gone["moved_to"] is None
    assert (await call(domain, "list_messages", {"mailbox": "bob", "folder": "Trash"}))["total"] == 0

    await call(domain, "delete", {"mailbox": "bob", "uids": [uids["two"]], "permanent": True})
    folders = {f["name"]: f for f in (await call(domain, "list_folders", {"mailbox": "bob"}))["folders"]}
    assert (folders["INBOX"]["messages"], folders["Trash"]["messages"], folders["Sent"]["messages"]) == (0, 0, 0)


async def test_move_without_the_move_extension_copies_and_expunges(mail: MailEnv) -> None:
    domain = mail.domain()
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "old server", "text": "x"})
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    pool = domain.service.pools["bob"]
    # Make the pooled connection behave like a server without RFC 6851 MOVE.
    await pool.run(lambda session: session.capabilities.discard("MOVE"))
    assert pool.idle_count() == 1
    moved = await call(domain, "move", {"mailbox": "bob", "uids": [uid], "to_folder": "Trash"})
    assert isinstance(moved["moved"][0]["new_uid"], int)
    assert (await call(domain, "list_messages", {"mailbox": "bob"}))["total"] == 0
    assert (await call(domain, "list_messages", {"mailbox": "bob", "folder": "Trash"}))["total"] == 1


async def test_unified_inbox_merges_accounts_newest_first(mail: MailEnv) -> None:
    domain = mail.domain()
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "to bob", "text": "1"})
    await call(domain, "send", {"mailbox": "bob", "to": [mail.alice.address], "subject": "to alice", "text": "2"})
    inbox = await call(domain, "inbox", {})
    assert inbox["errors"] == []
    assert {(m["mailbox"], m["subject"]) for m in inbox["messages"]} == {("bob", "to bob"), ("alice", "to alice")}
    received = [m["received"] for m in inbox["messages"]]
    assert received == sorted(received, reverse=True)
    only_alice = await call(domain, "inbox", {"mailboxes": ["alice"], "unseen_only": True})
    assert [m["subject"] for m in only_alice["messages"]] == ["to alice"]


async def test_unified_inbox_reports_a_down_account_and_still_returns_the_others(mail: MailEnv) -> None:
    from tests.support.mail import closed_port

    config = mail.config()
    config["accounts"][1]["imap"]["port"] = closed_port()
    domain = mail.domain(config)
    await call(domain, "send", {"mailbox": "alice", "to": [mail.alice.address], "subject": "note to self", "text": "x"})
    inbox = await call(domain, "inbox", {})
    assert [(m["mailbox"], m["subject"]) for m in inbox["messages"]] == [("alice", "note to self")]
    assert len(inbox["errors"]) == 1
    error = inbox["errors"][0]
    assert error["mailbox"] == "bob" and error["code"] == "unavailable"
    assert "connection refused" in error["message"]


async def test_a_hung_imap_server_times_out_without_holding_up_the_others(mail: MailEnv) -> None:
    from tests.support.mail import silent_listener

    with silent_listener() as port:
        # The hung server fails at the greeting (connect_timeout); the live one has timeout to spare.
        config = mail.config(timeout=5.0, connect_timeout=1.0)
        config["accounts"][1]["imap"]["port"] = port
        domain = mail.domain(config)
        with anyio.fail_after(10):
            inbox = await call(domain, "inbox", {})
    assert inbox["errors"][0]["mailbox"] == "bob"
    assert inbox["errors"][0]["code"] == "timeout"
    assert inbox["messages"] == []  # alice's inbox is empty, and it answered


async def test_list_messages_pages_newest_first_by_uid(mail: MailEnv) -> None:
    domain = mail.domain()
    for n in range(5):
        await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": f"m{n}", "text": "x"})
    first = await call(domain, "list_messages", {"mailbox": "bob", "limit": 2})
    assert [m["subject"] for m in first["messages"]] == ["m4", "m3"]
    assert first["total"] == 5
    second = await call(domain, "list_messages", {"mailbox": "bob", "limit": 2, "before_uid": first["next_before_uid"]})
    assert [m["subject"] for m in second["messages"]] == ["m2", "m1"]
    last = await call(domain, "list_messages", {"mailbox": "bob", "limit": 2, "before_uid": second["next_before_uid"]})
    assert [m["subject"] for m in last["messages"]] == ["m0"]
    assert last["next_before_uid"] is None


async def test_reply_threads_to_the_original_and_answers_its_sender(mail: MailEnv) -> None:
    domain = mail.domain()
    original = await call(
        domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "Dinner?", "text": "Friday?"}
    )
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    reply = await call(domain, "send", {"mailbox": "bob", "reply_uid": uid, "text": "Yes!"})
    assert reply["accepted"] == [mail.alice.address]
    answer = (await call(domain, "list_messages", {"mailbox": "alice"}))["messages"][0]
    message = await call(domain, "get_message", {"mailbox": "alice", "uid": answer["uid"]})
    assert message["subject"] == "Re: Dinner?"
    assert message["in_reply_to"] == original["message_id"]
    assert message["references"] == [original["message_id"]]


async def test_bcc_recipients_get_the_mail_without_appearing_in_it(mail: MailEnv) -> None:
    domain = mail.domain()
    sent = await call(
        domain,
        "send",
        {"mailbox": "alice", "to": [mail.alice.address], "bcc": [mail.bob.address], "subject": "s", "text": "b"},
    )
    assert sorted(sent["accepted"]) == sorted([mail.alice.address, mail.bob.address])
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    message = await call(domain, "get_message", {"mailbox": "bob", "uid": uid})
    assert message["bcc"] == [] and message["to"] == [{"name": None, "address": mail.alice.address}]
    delivered = mail.sink.received[-1].original_content
    assert delivered is not None
    assert message_from_bytes(delivered, policy=email_policy.default)["Bcc"] is None


async def test_html_send_gets_a_text_alternative_and_prefer_html_reads_the_html(mail: MailEnv) -> None:
    domain = mail.domain()
    await call(
        domain,
        "send",
        {"mailbox": "alice", "to": [mail.bob.address], "subject": "h", "html": "<p>Hello <b>there</b></p><p>Bye</p>"},
    )
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    plain = await call(domain, "get_message", {"mailbox": "bob", "uid": uid})
    assert (plain["text"], plain["text_source"]) == ("Hello there\n\nBye", "plain")
    html = await call(domain, "get_message", {"mailbox": "bob", "uid": uid, "prefer": "html", "max_chars": 100})
    assert (html["text"], html["text_source"]) == ("Hello there\n\nBye", "html")


async def test_get_message_can_mark_seen_and_truncates_long_bodies(mail: MailEnv) -> None:
    domain = mail.domain()
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "long", "text": "a" * 500})
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    message = await call(domain, "get_message", {"mailbox": "bob", "uid": uid, "max_chars": 100, "mark_seen": True})
    assert message["text"] == "a" * 100 and message["text_truncated"] is True
    assert message["seen"] is True
    assert (await call(domain, "search", {"mailbox": "bob", "seen": True}))["total"] == 1


async def test_connections_are_reused_and_a_dropped_one_is_replaced(mail: MailEnv) -> None:
    domain = mail.domain()
    pool = domain.service.pools["bob"]
    for _ in range(5):
        await call(domain, "list_messages", {"mailbox": "bob"})
    assert pool.opened == 1
    # The server (or a NAT box) drops the idle connection: the next call must not fail.
    await pool.run(lambda session: session.conn.sock.shutdown(2))
    listing = await call(domain, "list_messages", {"mailbox": "bob"})
    assert listing["total"] == 0
    assert pool.opened == 2


async def test_sent_mail_is_filed_in_the_sent_folder_when_configured(mail: MailEnv) -> None:
    config = mail.config()
    config["accounts"][0]["imap"]["save_sent"] = True
    domain = mail.domain(config)
    sent = await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "kept", "text": "x"})
    assert sent["saved_to"] == "Sent"
    filed = await call(domain, "list_messages", {"mailbox": "alice", "folder": "Sent"})
    assert [(m["subject"], m["seen"]) for m in filed["messages"]] == [("kept", True)]


async def test_folders_with_non_ascii_names_are_listed_and_usable(mail: MailEnv) -> None:
    import imaplib

    from servers.mail.imap_wire import encode_folder

    def create_folder() -> None:
        client = imaplib.IMAP4("127.0.0.1", mail.dovecot.port, timeout=10)
        client.login(mail.bob.name, mail.bob.password)
        client.create('"' + encode_folder("Geschäft/Verträge") + '"')
        client.logout()

    await anyio.to_thread.run_sync(create_folder)
    domain = mail.domain()
    names = [f["name"] for f in (await call(domain, "list_folders", {"mailbox": "bob", "counts": False}))["folders"]]
    assert names[0] == "INBOX" and "Geschäft/Verträge" in names
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "contract", "text": "x"})
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    await call(domain, "move", {"mailbox": "bob", "uids": [uid], "to_folder": "Geschäft/Verträge"})
    filed = await call(domain, "list_messages", {"mailbox": "bob", "folder": "Geschäft/Verträge"})
    assert [m["subject"] for m in filed["messages"]] == ["contract"]


async def test_mailboxes_lists_accounts_and_checks_them(mail: MailEnv) -> None:
    from tests.support.mail import closed_port

    config = mail.config()
    config["accounts"][1]["imap"]["port"] = closed_port()
    config["accounts"][0]["description"] = "Alice's work mail"
    domain = mail.domain(config)
    listed = await call(domain, "mailboxes", {})
    assert [(m["name"], m["address"], m["imap"], m["smtp"]) for m in listed["mailboxes"]] == [
        ("alice", mail.alice.address, True, True),
        ("bob", mail.bob.address, True, True),
    ]
    assert "status" not in listed["mailboxes"][0]
    checked = {m["name"]: m for m in (await call(domain, "mailboxes", {"check": True}))["mailboxes"]}
    assert checked["alice"]["status"] == "ok" and checked["alice"]["description"] == "Alice's work mail"
    assert checked["bob"]["status"] == "error" and "connection refused" in checked["bob"]["error"]
    health = await domain.health()  # type: ignore[misc]
    assert health == {"healthy": False, "details": {"alice": "ok", "bob": "error"}}


async def test_uidvalidity_mismatch_is_a_conflict_not_a_wrong_message(mail: MailEnv) -> None:
    domain = mail.domain()
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "s", "text": "x"})
    listing = await call(domain, "list_messages", {"mailbox": "bob"})
    uid, validity = listing["messages"][0]["uid"], listing["uidvalidity"]
    ok = await call(domain, "get_message", {"mailbox": "bob", "uid": uid, "uidvalidity": validity})
    assert ok["uid"] == uid
    error = await call_error(domain, "mark_seen", {"mailbox": "bob", "uids": [uid], "uidvalidity": validity + 1})
    assert (error.code, error.field) == ("conflict", "uidvalidity")
