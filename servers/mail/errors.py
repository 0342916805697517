"""Translate what imaplib, smtplib, ssl and sockets raise into `ToolError`, in one place.

    ToolError code        raised for
    timeout               TimeoutError (connect, greeting, any command)
    unavailable           refused / reset / unreachable connections, lost IMAP or SMTP sessions
    upstream_error        login refused, TLS failures, a server saying NO/BAD, SMTP rejections

Every message goes through `scrub()`: a server that echoes input back must not carry a
password into an error or a log line.
"""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from servers.kit import ToolError


class LoginFailed(Exception):
    """The server refused the configured credentials (the message holds only the server's words)."""


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _smtp_reply(code: int, message: object) -> str:
    return f"{code} {_text(message).strip()}"


def describe(exc: BaseException, *, protocol: str, where: str, account: str) -> ToolError:
    """The ToolError for one failure talking `protocol` ("IMAP"/"SMTP") to `where` (host:port)."""
    prefix = f"mailbox {account!r}: {protocol} {where}"
    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, LoginFailed):
        return ToolError(
            f"{prefix}: login refused ({exc}); check the configured user and password",
            code="upstream_error",
        )
    if isinstance(exc, TimeoutError):
        return ToolError(f"{prefix}: timed out", code="timeout", retryable=True)
    if isinstance(exc, ConnectionRefusedError):
        return ToolError(f"{prefix}: connection refused", code="unavailable", retryable=True)
    if isinstance(exc, socket.gaierror):
        return ToolError(f"{prefix}: host name does not resolve", code="unavailable", retryable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "verification failed"
        return ToolError(f"{prefix}: TLS certificate not trusted ({reason})", code="upstream_error")
    if isinstance(exc, ssl.SSLError):
        return ToolError(f"{prefix}: TLS failed ({exc.reason or exc})", code="upstream_error", retryable=True)
    if isinstance(exc, imaplib.IMAP4.abort):
        return ToolError(f"{prefix}: connection lost ({_text(exc)})", code="unavailable", retryable=True)
    if isinstance(exc, imaplib.IMAP4.error):
        return ToolError(f"{prefix}: server refused the command ({_text(exc)})", code="upstream_error")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ToolError(
            f"{prefix}: login refused ({_smtp_reply(exc.smtp_code, exc.smtp_error)}); "
            "check the configured user and password",
            code="upstream_error",
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{addr}: {_smtp_reply(code, msg)}" for addr, (code, msg) in exc.recipients.items())
        return ToolError(
            f"{prefix}: every recipient was refused ({refused})",
            code="upstream_error",
            field="to",
            data={"refused": sorted(exc.recipients)},
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return ToolError(
            f"{prefix}: sender {exc.sender!r} refused ({_smtp_reply(exc.smtp_code, exc.smtp_error)})",
            code="upstream_error",
        )
    if isinstance(exc, smtplib.SMTPDataError):
        return ToolError(
            f"{prefix}: message rejected ({_smtp_reply(exc.smtp_code, exc.smtp_error)})", code="upstream_error"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ToolError(f"{prefix}: {_text(exc)}", code="upstream_error")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ToolError(f"{prefix}: server closed the connection", code="unavailable", retryable=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        return ToolError(f"{prefix}: {_smtp_reply(exc.smtp_code, exc.smtp_error)}", code="upstream_error")
    if isinstance(exc, smtplib.SMTPException):
        return ToolError(f"{prefix}: {_text(exc)}", code="upstream_error")
    if isinstance(exc, (ConnectionError, EOFError)):
        return ToolError(f"{prefix}: connection lost", code="unavailable", retryable=True)
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return ToolError(f"{prefix}: network error ({reason})", code="unavailable", retryable=True)
    raise exc


@contextmanager
def translated(*, protocol: str, where: str, account: str, secrets: Sequence[str]) -> Iterator[None]:
    """Re-raise any mail-library failure inside the block as a scrubbed ToolError."""
    try:
        yield
    except ToolError as exc:
        exc.message = scrub(exc.message, secrets)
        exc.args = (exc.message,)
        raise
    except (OSError, EOFError, imaplib.IMAP4.error, smtplib.SMTPException, LoginFailed) as exc:
        error = describe(exc, protocol=protocol, where=where, account=account)
        error.message = scrub(error.message, secrets)
        error.args = (error.message,)
        raise error from None
