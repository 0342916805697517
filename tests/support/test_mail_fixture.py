"""The test mail system says clearly what is missing when it cannot start."""

from __future__ import annotations

import pytest

from tests.support import mail


def test_missing_dovecot_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mail.shutil, "which", lambda name: None)
    monkeypatch.setattr(mail.os.path, "exists", lambda path: False)
    starting = mail.Dovecot.started()
    with pytest.raises(mail.MailFixtureError, match=r"dovecot is not installed: run \./scripts/setup"):
        starting.__enter__()


def test_a_silent_server_accepts_connections_but_never_greets() -> None:
    import socket

    with mail.silent_listener() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recv(1)
