"""Sending through an account's SMTP server, reusing one connection between sends.

A kept connection is probed with NOOP before reuse, so a message is never handed to a
connection the server already closed (no retry of a send that might have gone out).
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import threading
import time

import anyio
import anyio.to_thread

from servers.mail.config import Account, MailConfig
from servers.mail.errors import translated
from servers.mail.imap_pool import tls_context

# Keep an idle SMTP connection at most this long (servers drop idle clients after ~5 minutes).
SMTP_IDLE_SECONDS = 60.0


class SmtpClient:
    def __init__(self, account: Account, config: MailConfig) -> None:
        assert account.smtp is not None
        self.account = account
        self.config = config
        self.endpoint = account.smtp
        self.where = f"{self.endpoint.host}:{self.endpoint.port_or_default()}"
        self._idle: tuple[smtplib.SMTP, float] | None = None
        self._lock = threading.Lock()
        self.opened = 0

    async def send(self, sender: str, recipients: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
        """Deliver `data`; returns the recipients the server refused (others were accepted)."""
        with translated(protocol="SMTP", where=self.where, account=self.account.name, secrets=self.account.secrets()):
            with anyio.fail_after(self.config.timeout + self.config.connect_timeout):
                return await anyio.to_thread.run_sync(self._send, sender, recipients, data, abandon_on_cancel=True)

    def _send(self, sender: str, recipients: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
        conn = self._checkout()
        try:
            refused = conn.sendmail(sender, recipients, data)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError):
            # The server said no to this message; the session itself is fine after RSET.
            try:
                conn.rset()
                self._checkin(conn)
            except (OSError, smtplib.SMTPException):
                _close(conn)
            raise
        except BaseException:
            _close(conn)
            raise
        self._checkin(conn)
        return refused

    def _checkout(self) -> smtplib.SMTP:
        with self._lock:
            kept, self._idle = self._idle, None
        if kept is not None:
            conn, since = kept
            if time.monotonic() - since < SMTP_IDLE_SECONDS:
                try:
                    if conn.noop()[0] == 250:
                        return conn
                except (OSError, smtplib.SMTPException):
                    pass
            _close(conn)
        return self._open()

    def _checkin(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            if self._idle is None:
                self._idle = (conn, time.monotonic())
                return
        _close(conn)

    def _open(self) -> smtplib.SMTP:
        endpoint, config = self.endpoint, self.config
        host, port = endpoint.host, endpoint.port_or_default()
        with self._lock:
            self.opened += 1
        conn: smtplib.SMTP
        if endpoint.tls == "implicit":
            conn = smtplib.SMTP_SSL(host, port, timeout=config.connect_timeout, context=tls_context(endpoint))
        else:
            conn = smtplib.SMTP(host, port, timeout=config.connect_timeout)
        try:
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sock.settimeout(config.timeout)
            conn.ehlo()
            if endpoint.tls == "starttls":
                conn.starttls(context=tls_context(endpoint))
                conn.ehlo()
            if endpoint.password is not None:
                conn.login(endpoint.user or self.account.address, endpoint.password.get_secret_value())
        except BaseException:
            _close(conn)
            raise
        return conn

    async def aclose(self) -> None:
        with self._lock:
            kept, self._idle = self._idle, None
        if kept is not None:
            await anyio.to_thread.run_sync(_close, kept[0], abandon_on_cancel=True)


def _close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        with contextlib.suppress(OSError):
            conn.close()
