"""IMAP connections per account: opened on demand, reused, checked when idle, replaced when broken.

imaplib is blocking, so each operation runs in a worker thread on one connection it has to
itself. The pool keeps up to `pool_size` logged-in connections per account. A connection that
sat idle longer than `idle_check_after` is probed with NOOP before reuse; a connection that
fails mid-operation is closed, and an idempotent operation is retried once on a fresh one (a
server that dropped an idle connection is the common case). Every socket operation has a
timeout, and the whole operation has one too: a caller never waits longer than `timeout`.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from servers.kit import ToolError
from servers.mail.config import Account, Endpoint, MailConfig
from servers.mail.errors import LoginFailed, scrub, translated
from servers.mail.imap_wire import folder_arg

T = TypeVar("T")
_log = logging.getLogger("toolmux.mail")


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=endpoint.ca_file)
    if not endpoint.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ImapCommandFailed(imaplib.IMAP4.error):
    """The server answered NO or BAD; the connection itself is still usable."""

    def __init__(self, command: str, status: str, text: str) -> None:
        super().__init__(f"{command} {status}: {text}")
        self.command = command
        self.status = status
        self.text = text


class ImapSession:
    """One logged-in connection and what is known about it."""

    def __init__(self, conn: imaplib.IMAP4, capabilities: set[str]) -> None:
        self.conn = conn
        self.capabilities = capabilities
        self.selected: str | None = None
        self.selected_readonly = False
        self.uidvalidity = 0
        self.exists = 0
        self.uidnext: int | None = None
        self.last_used = time.monotonic()

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def reset(self) -> None:
        # imaplib keeps every untagged response until someone pops it; a pooled connection
        # would otherwise grow without bound and leak one call's data into the next.
        self.conn.untagged_responses.clear()

    def check(self, command: str, typ: str, data: list[Any]) -> list[Any]:
        if typ != "OK":
            text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise ImapCommandFailed(command, typ, text)
        return data

    def uid(self, command: str, *args: Any) -> list[Any]:
        typ, data = self.conn.uid(command, *args)
        return self.check(f"UID {command}", typ, data)

    def simple(self, command: str, *args: Any) -> tuple[list[Any], dict[str, list[Any]]]:
        """Run a command imaplib has no helper for; (tagged data, untagged responses)."""
        self.reset()
        typ, data = self.conn._simple_command(command, *args)
        self.check(command, typ, data)
        return data, dict(self.conn.untagged_responses)

    def select(self, folder: str, *, readonly: bool) -> None:
        if self.selected == folder and (readonly or not self.selected_readonly):
            # Still selected from an earlier call: NOOP makes the server sync the folder, so mail
            # that arrived since is seen by this call (a command sees the view as of its start).
            self.reset()
            self.check("NOOP", *self.conn.noop())
            return
        self.selected = None
        try:
            typ, data = self.conn.select(folder_arg(folder).decode(), readonly=readonly)
        except imaplib.IMAP4.readonly:
            self.conn.state = "AUTH"  # imaplib left it half-selected; the next select starts clean
            raise ToolError(
                f"folder {folder!r} is read-only on this server", code="forbidden", field="folder"
            ) from None
        self.check("SELECT", typ, data)
        untagged = self.conn.untagged_responses
        self.uidvalidity = _last_number(untagged.get("UIDVALIDITY")) or 0
        self.exists = _last_number(untagged.get("EXISTS")) or 0
        self.uidnext = _last_number(untagged.get("UIDNEXT"))
        self.selected, self.selected_readonly = folder, readonly

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, imaplib.IMAP4.error):
            self.conn.logout()
        with contextlib.suppress(OSError, EOFError, imaplib.IMAP4.error):
            self.conn.shutdown()


def _login(conn: imaplib.IMAP4, user: str, password: str) -> None:
    try:
        if password.isascii() and user.isascii():
            conn.login(user, password)
        else:  # LOGIN cannot carry UTF-8; SASL PLAIN can.
            secret = f"\0{user}\0{password}".encode()
            conn.authenticate("PLAIN", lambda _: secret)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        message = exc.args[0] if exc.args else ""
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        raise LoginFailed(scrub(text, [password])) from None


def open_session(account: Account, config: MailConfig) -> ImapSession:
    endpoint = account.imap
    assert endpoint is not None
    host, port = endpoint.host, endpoint.port_or_default()
    conn: imaplib.IMAP4
    if endpoint.tls == "implicit":
        conn = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(endpoint), timeout=config.connect_timeout)
    else:
        conn = imaplib.IMAP4(host, port, timeout=config.connect_timeout)
    try:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(config.timeout)
        if endpoint.tls == "starttls":
            conn.starttls(ssl_context=tls_context(endpoint))
        password = endpoint.password.get_secret_value() if endpoint.password else ""
        _login(conn, account.imap_user(), password)
        _typ, data = conn.capability()
        capabilities = set(b" ".join(d for d in data if isinstance(d, bytes)).decode().upper().split())
    except BaseException:
        with contextlib.suppress(OSError):
            conn.shutdown()
        raise
    return ImapSession(conn, capabilities)


class _Call:
    abandoned = False


class ImapPool:
    """The connections of one account."""

    def __init__(self, account: Account, config: MailConfig) -> None:
        assert account.imap is not None
        self.account = account
        self.config = config
        self.where = f"{account.imap.host}:{account.imap.port_or_default()}"
        self._idle: list[ImapSession] = []
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(config.pool_size)
        self._closed = False
        self.opened = 0  # connections opened so far (reuse shows as a small number)

    async def run(self, operation: Callable[[ImapSession], T], *, idempotent: bool = True) -> T:
        """Run `operation(session)` in a worker thread; failures come back as ToolError."""
        call = _Call()
        with translated(protocol="IMAP", where=self.where, account=self.account.name, secrets=self.account.secrets()):
            try:
                with anyio.fail_after(self.config.timeout + self.config.connect_timeout):
                    return await anyio.to_thread.run_sync(
                        self._run, operation, idempotent, call, limiter=self._limiter, abandon_on_cancel=True
                    )
            except TimeoutError:
                call.abandoned = True
                raise
            except anyio.get_cancelled_exc_class():
                call.abandoned = True
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _run(self, operation: Callable[[ImapSession], T], idempotent: bool, call: _Call) -> T:
        for attempt in (1, 2):
            session, reused = self._checkout()
            try:
                result = operation(session)
            except (ImapCommandFailed, ToolError, imaplib.IMAP4.readonly):
                self._checkin(session, call)
                raise
            except imaplib.IMAP4.error as exc:
                if isinstance(exc, imaplib.IMAP4.abort) or "illegal in state" in str(exc):
                    session.close()
                else:
                    self._checkin(session, call)
                if reused and idempotent and attempt == 1 and isinstance(exc, imaplib.IMAP4.abort):
                    continue
                raise
            except (OSError, EOFError) as exc:
                session.close()
                if reused and idempotent and attempt == 1 and not isinstance(exc, TimeoutError):
                    _log.info("mailbox %s: pooled IMAP connection was dropped; reconnecting", self.account.name)
                    continue
                raise
            except BaseException:
                session.close()
                raise
            self._checkin(session, call)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _checkout(self) -> tuple[ImapSession, bool]:
        while True:
            with self._lock:
                session = self._idle.pop() if self._idle else None
            if session is None:
                with self._lock:
                    self.opened += 1
                return open_session(self.account, self.config), False
            if time.monotonic() - session.last_used > self.config.idle_check_after:
                try:
                    session.reset()
                    session.check("NOOP", *session.conn.noop())
                except (OSError, EOFError, imaplib.IMAP4.error):
                    session.close()
                    continue
            session.reset()
            return session, True

    def _checkin(self, session: ImapSession, call: _Call) -> None:
        session.last_used = time.monotonic()
        with self._lock:
            keep = not call.abandoned and not self._closed and len(self._idle) < self.config.pool_size
            if keep:
                self._idle.append(session)
        if not keep:
            session.close()

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for session in idle:
            await anyio.to_thread.run_sync(session.close, abandon_on_cancel=True)

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)


def require_uidvalidity(session: ImapSession, expected: int | None) -> None:
    if expected is not None and expected != session.uidvalidity:
        raise ToolError(
            f"folder {session.selected!r} was renumbered (UIDVALIDITY {session.uidvalidity}, you passed "
            f"{expected}): its UIDs changed, list the folder again",
            code="conflict",
            field="uidvalidity",
        )


def _last_number(responses: list[bytes | tuple[bytes, bytes]] | None) -> int | None:
    """The number in the last untagged response of a kind (`* 5 EXISTS`, `* OK [UIDNEXT 7]`), if any."""
    if not responses:
        return None
    last = responses[-1]
    return int(last[0] if isinstance(last, tuple) else last)
