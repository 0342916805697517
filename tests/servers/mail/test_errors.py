"""Bad input and failing servers give clear errors, and credentials never leak into them or the logs."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from servers.kit import ServerConfigError, ServerSettings
from servers.mail.server import create
from tests.support.mail import REJECT_DATA
from tests.support.mail_env import MailEnv, call, call_error

pytestmark = pytest.mark.anyio


async def test_unknown_mailbox_error_lists_the_configured_ones(mail: MailEnv) -> None:
    domain = mail.domain()
    for tool, args in (
        ("list_messages", {"mailbox": "carol"}),
        ("send", {"mailbox": "carol", "to": ["x@y.test"], "text": "x"}),
        ("get_message", {"mailbox": "carol", "uid": 1}),
    ):
        error = await call_error(domain, tool, args)
        assert (error.code, error.field) == ("not_found", "mailbox")
        assert "'carol'" in error.message and "alice, bob" in error.message
    error = await call_error(domain, "inbox", {"mailboxes": ["alice", "carol"]})
    assert (error.code, error.field) == ("not_found", "mailboxes[1]")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", "not-an-address"),
        ("to", "two@a.test, three@b.test"),
        ("cc", "a@@b.test"),
        ("bcc", "spaces in@local.test"),
        ("to", "user@nodot"),
        ("reply_to", "x@-bad-.test"),
    ],
)
async def test_invalid_address_is_refused_naming_the_field(mail: MailEnv, field: str, value: str) -> None:
    domain = mail.domain()
    error = await call_error(domain, "send", {"mailbox": "alice", field: [value], "text": "x"})
    assert error.code == "invalid_argument"
    assert error.field == f"{field}[0]"
    assert all(e.mail_from != mail.alice.address for e in mail.sink.received)  # nothing went out


async def test_send_without_any_recipient_is_refused(mail: MailEnv) -> None:
    error = await call_error(mail.domain(), "send", {"mailbox": "alice", "subject": "x", "text": "x"})
    assert (error.code, error.field) == ("invalid_argument", "to")


async def test_unknown_uid_is_not_found(mail: MailEnv) -> None:
    domain = mail.domain()
    error = await call_error(domain, "get_message", {"mailbox": "bob", "uid": 4242})
    assert (error.code, error.field) == ("not_found", "uid")
    assert "4242" in error.message
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "s", "text": "x"})
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    for tool in ("mark_seen", "flag", "delete"):
        error = await call_error(domain, tool, {"mailbox": "bob", "uids": [uid, 4242]})
        assert (error.code, error.field) == ("not_found", "uids") and "4242" in error.message
    error = await call_error(domain, "move", {"mailbox": "bob", "uids": [4242], "to_folder": "Trash"})
    assert error.code == "not_found"
    # Nothing was touched by the refused batch.
    assert (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["seen"] is False


async def test_folder_that_does_not_exist_is_not_found_and_lists_folders(mail: MailEnv) -> None:
    domain = mail.domain()
    error = await call_error(domain, "list_messages", {"mailbox": "bob", "folder": "Archive"})
    assert (error.code, error.field) == ("not_found", "folder")
    assert "'Archive'" in error.message and "INBOX" in error.message and "Trash" in error.message
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "subject": "s", "text": "x"})
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    error = await call_error(domain, "move", {"mailbox": "bob", "uids": [uid], "to_folder": "Archive"})
    assert (error.code, error.field) == ("not_found", "to_folder")
    assert (await call(domain, "list_messages", {"mailbox": "bob"}))["total"] == 1


async def test_smtp_rejections_are_reported_with_the_servers_reason(mail: MailEnv) -> None:
    domain = mail.domain()
    refused_all = await call_error(domain, "send", {"mailbox": "alice", "to": ["ghost@example.test"], "text": "x"})
    assert refused_all.code == "upstream_error"
    assert "ghost@example.test" in refused_all.message and "550" in refused_all.message

    refused_data = await call_error(domain, "send", {"mailbox": "alice", "to": [REJECT_DATA], "text": "x"})
    assert refused_data.code == "upstream_error"
    assert "554" in refused_data.message and "refused by test policy" in refused_data.message

    partly = await call(
        domain, "send", {"mailbox": "alice", "to": [mail.bob.address, "ghost@example.test"], "text": "x"}
    )
    assert partly["accepted"] == [mail.bob.address]
    assert partly["refused"] == [{"address": "ghost@example.test", "reason": "550 5.1.1 no such user here"}]
    # The connection survived the rejections and is still the only one.
    assert domain.service.smtp["alice"].opened == 1


async def test_wrong_password_is_reported_without_the_password_in_errors_or_logs(
    mail: MailEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "hunter2-Secret-Value-77"
    config = mail.config()
    config["accounts"][1]["imap"]["password"] = secret
    domain = mail.domain(config)
    error = await call_error(domain, "list_messages", {"mailbox": "bob"})
    assert error.code == "upstream_error" and "login refused" in error.message
    inbox = await call(domain, "inbox", {})
    checked = await call(domain, "mailboxes", {"check": True})
    everything = repr((error.message, error.data, inbox, checked, caplog.text, domain.list_tools()))
    assert secret not in everything
    assert "login refused" in inbox["errors"][0]["message"]


@contextmanager
def echoing_imap_server() -> Iterator[int]:
    """A hostile IMAP server that repeats the LOGIN command (password included) in its refusal."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] echo server ready\r\n")
                reader = conn.makefile("rb")
                for line in reader:
                    tag, _, rest = line.decode().strip().partition(" ")
                    if rest.upper().startswith("CAPABILITY"):
                        conn.sendall(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n".encode())
                    elif rest.upper().startswith("LOGIN"):
                        conn.sendall(f"{tag} NO [AUTHENTICATIONFAILED] you sent: {rest}\r\n".encode())
                    elif rest.upper().startswith("LOGOUT"):
                        conn.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
                        break
                    else:
                        conn.sendall(f"{tag} BAD what\r\n".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(5)


async def test_a_server_echoing_the_password_back_cannot_leak_it(
    mail: MailEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Echo-Me-If-You-Dare-42"
    with echoing_imap_server() as port:
        config = mail.config()
        config["accounts"][0]["imap"].update(port=port, password=secret)
        domain = mail.domain(config)
        error = await call_error(domain, "list_folders", {"mailbox": "alice"})
    assert "login refused" in error.message and "you sent: LOGIN" in error.message
    assert "***" in error.message
    assert secret not in error.message and secret not in caplog.text


async def test_saving_an_attachment_without_a_hub_says_storage_is_out_of_reach(mail: MailEnv) -> None:
    domain = mail.domain(hub=None)
    await call(
        domain,
        "send",
        {
            "mailbox": "alice",
            "to": [mail.bob.address],
            "text": "x",
            "attachments": [{"filename": "a.txt", "text": "a"}],
        },
    )
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    error = await call_error(
        domain, "get_message", {"mailbox": "bob", "uid": uid, "save_attachments": [{"index": 0, "bucket": "b"}]}
    )
    assert (error.code, error.field) == ("unavailable", "save_attachments")
    assert "hub" in error.message
    error = await call_error(
        domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "attachments": [{"bucket": "b", "key": "k"}]}
    )
    assert (error.code, error.field) == ("unavailable", "attachments[0]")


async def test_missing_storage_object_and_bad_attachment_index_are_clear(mail: MailEnv) -> None:
    domain = mail.domain()
    error = await call_error(
        domain,
        "send",
        {"mailbox": "alice", "to": [mail.bob.address], "attachments": [{"bucket": "docs", "key": "nope"}]},
    )
    assert (error.code, error.field) == ("not_found", "attachments[0]") and "docs/nope" in error.message
    inline_garbage = [{"filename": "x", "base64": "%%"}]
    error = await call_error(
        domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "attachments": inline_garbage}
    )
    assert error.field == "attachments[0].base64"
    await call(domain, "send", {"mailbox": "alice", "to": [mail.bob.address], "text": "no attachments"})
    uid = (await call(domain, "list_messages", {"mailbox": "bob"}))["messages"][0]["uid"]
    error = await call_error(
        domain, "get_message", {"mailbox": "bob", "uid": uid, "save_attachments": [{"index": 3, "bucket": "notes"}]}
    )
    assert (error.code, error.field) == ("not_found", "save_attachments[0].index")


async def test_schema_violations_name_the_field(mail: MailEnv) -> None:
    domain = mail.domain()
    error = await call_error(domain, "search", {"mailbox": "bob", "since": "last tuesday"})
    assert error.field == "since"
    error = await call_error(domain, "mark_seen", {"mailbox": "bob", "uids": []})
    assert error.field == "uids"
    error = await call_error(domain, "get_message", {"mailbox": "bob"})
    assert error.field == "uid"


def test_plaintext_to_a_remote_host_is_refused_at_config_time() -> None:
    config = {
        "accounts": [
            {
                "name": "work",
                "address": "me@example.com",
                "imap": {"host": "imap.example.com", "tls": "none", "password": "pw-in-config-9"},
            }
        ]
    }
    with pytest.raises(ServerConfigError) as caught:
        create(ServerSettings(name="mail", config=config))
    assert "servers.mail.config.accounts.0.imap" in str(caught.value)
    assert "loopback" in str(caught.value) and "pw-in-config-9" not in str(caught.value)


@pytest.mark.parametrize(
    ("accounts", "needle"),
    [
        ([{"name": "Work Mail", "address": "a@b.test", "smtp": {"host": "localhost", "tls": "none"}}], "name"),
        ([{"name": "w", "address": "not-an-address", "smtp": {"host": "localhost", "tls": "none"}}], "address"),
        ([{"name": "w", "address": "a@b.test"}], "'smtp' or both"),
        (
            [
                {"name": "w", "address": "a@b.test", "smtp": {"host": "localhost", "tls": "none"}},
                {"name": "w", "address": "c@b.test", "smtp": {"host": "localhost", "tls": "none"}},
            ],
            "used twice",
        ),
    ],
)
def test_invalid_accounts_are_refused_with_the_key_path(accounts: list[dict[str, object]], needle: str) -> None:
    with pytest.raises(ServerConfigError, match=r"servers\.mail\.config\.accounts") as caught:
        create(ServerSettings(name="mail", config={"accounts": accounts}))
    assert needle in str(caught.value)


def test_tools_appear_only_when_some_account_can_serve_them() -> None:
    smtp_only = {"accounts": [{"name": "out", "address": "a@b.test", "smtp": {"host": "localhost", "tls": "none"}}]}
    imap_only = {"accounts": [{"name": "in", "address": "a@b.test", "imap": {"host": "127.0.0.1", "tls": "none"}}]}
    assert create(ServerSettings(name="mail", config=smtp_only)).visible_tools() == ["mailboxes", "send"]
    reading = create(ServerSettings(name="mail", config=imap_only)).visible_tools()
    assert "send" not in reading and {"inbox", "search", "get_message", "delete"} <= set(reading)
    assert create(ServerSettings(name="mail", config={})).visible_tools() == ["mailboxes"]


async def test_an_imap_tool_on_a_send_only_mailbox_says_so(mail: MailEnv) -> None:
    config = mail.config()
    del config["accounts"][1]["imap"]
    domain = mail.domain(config)
    error = await call_error(domain, "list_messages", {"mailbox": "bob"})
    assert error.field == "mailbox" and "no IMAP" in error.message and "alice" in error.message
    inbox = await call(domain, "inbox", {})
    assert inbox["errors"] == []  # the default set is the mailboxes that can be read
