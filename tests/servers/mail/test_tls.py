"""TLS both ways a mail server offers it (implicit and STARTTLS), for IMAP and SMTP, and a
certificate the client does not trust."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.mail import Dovecot, SmtpSink
from tests.support.mail_env import MailEnv, call, call_error

pytestmark = pytest.mark.anyio

SMTP_USER, SMTP_PASSWORD = "relay-user", "relay-Pa55-word"


def server_tls(dovecot: Dovecot) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(dovecot.root / "cert.pem", dovecot.root / "key.pem")
    return context


def authenticator(server: object, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (SMTP_USER.encode(), SMTP_PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def starttls_sink(dovecot: Dovecot) -> Iterator[SmtpSink]:
    """An SMTP server that demands STARTTLS, then a login, before it takes mail."""
    with SmtpSink.started(
        dovecot,
        tls_context=server_tls(dovecot),
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    ) as sink:
        yield sink


def tls_config(mail: MailEnv, sink: SmtpSink, *, imap_tls: str, smtp_password: str = SMTP_PASSWORD) -> dict:
    config = mail.config()
    alice = config["accounts"][0]
    port = mail.dovecot.tls_port if imap_tls == "implicit" else mail.dovecot.port
    alice["imap"].update(host="localhost", port=port, tls=imap_tls, ca_file=mail.dovecot.ca_file)
    alice["smtp"] = {
        "host": "127.0.0.1",
        "port": sink.port,
        "tls": "starttls",
        "ca_file": mail.dovecot.ca_file,
        "user": SMTP_USER,
        "password": smtp_password,
    }
    return config


@pytest.mark.parametrize("imap_tls", ["implicit", "starttls"])
async def test_mail_flows_over_tls_with_a_private_ca(mail: MailEnv, starttls_sink: SmtpSink, imap_tls: str) -> None:
    domain = mail.domain(tls_config(mail, starttls_sink, imap_tls=imap_tls))
    sent = await call(domain, "send", {"mailbox": "alice", "to": [mail.alice.address], "subject": "tls", "text": "x"})
    assert sent["accepted"] == [mail.alice.address]
    listing = await call(domain, "list_messages", {"mailbox": "alice"})
    assert [m["subject"] for m in listing["messages"]] == ["tls"]
    session_cipher = await domain.service.pools["alice"].run(lambda s: s.conn.sock.cipher())
    assert session_cipher is not None  # the IMAP socket really is TLS


async def test_untrusted_certificate_is_refused_with_a_clear_error(mail: MailEnv, starttls_sink: SmtpSink) -> None:
    config = tls_config(mail, starttls_sink, imap_tls="implicit")
    del config["accounts"][0]["imap"]["ca_file"]
    domain = mail.domain(config)
    error = await call_error(domain, "list_folders", {"mailbox": "alice"})
    assert error.code == "upstream_error" and "certificate not trusted" in error.message

    config["accounts"][0]["imap"]["verify_tls"] = False
    relaxed = mail.domain(config)
    assert (await call(relaxed, "list_folders", {"mailbox": "alice", "counts": False}))["folders"]


async def test_smtp_login_failure_is_clear_and_keeps_the_password_secret(
    mail: MailEnv, starttls_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "Wrong-Smtp-Secret-31"
    domain = mail.domain(tls_config(mail, starttls_sink, imap_tls="starttls", smtp_password=secret))
    error = await call_error(domain, "send", {"mailbox": "alice", "to": [mail.alice.address], "text": "x"})
    assert error.code == "upstream_error" and "login refused" in error.message and "535" in error.message
    assert secret not in error.message and secret not in caplog.text


async def test_plaintext_smtp_to_a_server_demanding_starttls_is_refused(mail: MailEnv, starttls_sink: SmtpSink) -> None:
    config = mail.config()
    config["accounts"][0]["smtp"] = {"host": "127.0.0.1", "port": starttls_sink.port, "tls": "none"}
    error = await call_error(mail.domain(config), "send", {"mailbox": "alice", "to": [mail.bob.address], "text": "x"})
    assert error.code == "upstream_error" and "530" in error.message
