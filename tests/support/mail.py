"""A real mail system for tests: Debian's dovecot serving Maildirs, and an SMTP receiver filling them.

    with Dovecot.started() as dovecot, SmtpSink.started(dovecot) as sink:
        user = dovecot.add_user()               # a fresh mailbox: user.address, user.name, user.password
        ... IMAP at 127.0.0.1:dovecot.port (STARTTLS offered), implicit TLS at dovecot.tls_port,
        ... SMTP at 127.0.0.1:sink.port delivers to <user>@example.test into that user's Maildir

Dovecot runs as root here and drops to uid/gid 65534 for mail access, so every Maildir file
the tests write is chowned to 65534. The whole instance lives in its own temporary directory
(config, sockets, state, mail), so parallel test runs never share anything.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

MAIL_UID = 65534
DOMAIN = "example.test"
REJECT_DATA = f"reject-data@{DOMAIN}"
STARTUP_SECONDS = 15.0
USERS = 400

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {uid}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
  default_fields = uid={uid} gid={uid}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
# Failed logins must not slow every later login from 127.0.0.1 (dovecot's auth penalty).
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}
"""


class MailFixtureError(RuntimeError):
    """The test mail system could not start; the message says why and what to install."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never says a word: a hung server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def _chown_tree(path: Path) -> None:
    os.chown(path, MAIL_UID, MAIL_UID)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), MAIL_UID, MAIL_UID)


@dataclass
class MailUser:
    name: str
    password: str
    address: str
    home: Path

    @property
    def maildir(self) -> Path:
        return self.home / "Maildir"

    def deliver(self, *raws: bytes) -> None:
        """Drop messages straight into the user's INBOX, as a local delivery agent would."""
        box = mailbox.Maildir(self.maildir, create=True)
        for raw in raws:
            key = box.add(raw)  # plain bytes always land in new/ under their key
            os.chown(self.maildir / "new" / key, MAIL_UID, MAIL_UID)


class Dovecot:
    def __init__(self, root: Path, extra_config: str = "") -> None:
        self.root = root
        self.extra_config = extra_config
        self.port = 0
        self.tls_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.users: dict[str, MailUser] = {}
        self._unused: list[MailUser] = []
        self._lock = threading.Lock()

    @property
    def ca_file(self) -> str:
        return str(self.root / "cert.pem")

    @classmethod
    @contextmanager
    def started(cls, extra_config: str = "") -> Iterator[Dovecot]:
        """A running dovecot; `extra_config` is appended to its config (e.g. an `imap_capability` override)."""
        binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
        if binary is None:
            raise MailFixtureError("dovecot is not installed: run ./scripts/setup (Debian package dovecot-imapd)")
        if os.geteuid() != 0:
            raise MailFixtureError("the dovecot test fixture runs dovecot as root (it drops to uid 65534 for mail)")
        root = Path(tempfile.mkdtemp(prefix="tm-dovecot-"))
        root.chmod(0o755)
        server = cls(root, extra_config)
        try:
            server._start(binary)
            yield server
        finally:
            server._stop()
            shutil.rmtree(root, ignore_errors=True)

    def _start(self, binary: str) -> None:
        (self.root / "run").mkdir()
        (self.root / "state").mkdir()
        (self.root / "mail").mkdir(mode=0o755)
        self._write_passwd()
        self._make_certificate()
        last_log = ""
        for _ in range(3):  # a free port can be taken by someone else before dovecot binds it
            self.port, self.tls_port = free_port(), free_port()
            conf = self.root / "dovecot.conf"
            conf.write_text(
                _CONFIG.format(root=self.root, uid=MAIL_UID, port=self.port, tls_port=self.tls_port) + self.extra_config
            )
            self.process = subprocess.Popen(
                [binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            if self._wait_ready():
                return
            self._stop()
            log = self.root / "dovecot.log"
            last_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            if "in use" not in last_log:
                break
        raise MailFixtureError(f"dovecot did not start; its log ends with:\n{last_log}")

    def _make_certificate(self) -> None:
        openssl = shutil.which("openssl")
        if openssl is None:
            raise MailFixtureError("openssl is not installed (needed to make the test server's TLS certificate)")
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(self.root / "key.pem"),
                "-out",
                str(self.root / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return True
            except OSError:
                time.sleep(0.02)  # polling a port that is not open yet; nothing to wait on instead
        return False

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def _write_passwd(self) -> None:
        # dovecot re-reads a passwd-file at most once a second, so a user added during a run
        # could be unknown for a moment: every user is written up front, handed out later.
        lines = []
        for n in range(1, USERS + 1):
            name, password = f"u{n}", secrets.token_urlsafe(12)
            home = self.root / "mail" / name
            self._unused.append(MailUser(name=name, password=password, address=f"{name}@{DOMAIN}", home=home))
            lines.append(f"{name}:{{PLAIN}}{password}::::{home}\n")
        (self.root / "passwd").write_text("".join(lines))

    def add_user(self) -> MailUser:
        """A new, empty mailbox with its own random password."""
        with self._lock:
            if not self._unused:
                raise MailFixtureError(f"all {USERS} test mailboxes are in use; raise USERS in tests/support/mail.py")
            user = self._unused.pop(0)
            self.users[user.address] = user
        for path in (user.home, user.maildir, *(user.maildir / sub for sub in ("cur", "new", "tmp"))):
            path.mkdir()
        _chown_tree(user.home)
        return user

    def account(self, user: MailUser, *, name: str, smtp_port: int | None = None, **imap: Any) -> dict[str, Any]:
        """A mail server config account for `user` (plain IMAP on loopback unless `imap` says otherwise)."""
        endpoint = {"host": "127.0.0.1", "port": self.port, "tls": "none", "user": user.name, "password": user.password}
        entry: dict[str, Any] = {"name": name, "address": user.address, "imap": endpoint | imap}
        if smtp_port is not None:
            entry["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "tls": "none"}
        return entry


class _Delivery:
    """aiosmtpd handler: accepts mail for known users and files it in their Maildir."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self.received: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() != REJECT_DATA and address.lower() not in self.dovecot.users:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if REJECT_DATA in (r.lower() for r in envelope.rcpt_tos):
            return "554 5.7.1 message refused by test policy"
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        self.received.append(envelope)
        for rcpt in envelope.rcpt_tos:
            await asyncio.to_thread(self.dovecot.users[rcpt.lower()].deliver, content)
        return "250 2.0.0 delivered"


class _BoundController(Controller):
    """aiosmtpd's Controller serving a socket bound beforehand to port 0 (no port race)."""

    def __init__(self, handler: Any, sock: socket.socket, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=sock.getsockname()[1], **kwargs)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SmtpSink:
    def __init__(self, controller: _BoundController, handler: _Delivery) -> None:
        self.controller = controller
        self.handler = handler
        self.port: int = controller.port

    @property
    def received(self) -> list[Envelope]:
        return self.handler.received

    @classmethod
    @contextmanager
    def started(cls, dovecot: Dovecot, **smtp_options: Any) -> Iterator[SmtpSink]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        handler = _Delivery(dovecot)
        controller = _BoundController(handler, sock, ready_timeout=15, **smtp_options)
        controller.start()
        try:
            yield cls(controller, handler)
        finally:
            controller.stop()
            sock.close()


def client_tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
