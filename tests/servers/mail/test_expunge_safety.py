"""Moving or deleting mail never removes a message the caller did not name.

Each test runs a real dovecot whose advertised capabilities leave out MOVE (and UIDPLUS): the
fallback a client takes then is exactly what could expunge another client's `\\Deleted` mail.
"""

from __future__ import annotations

import imaplib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import anyio.to_thread
import pytest

from servers.kit import Domain, ServerSettings
from servers.mail.server import create
from tests.support.mail import Dovecot, MailUser
from tests.support.mail_env import call, call_error

pytestmark = pytest.mark.anyio

# dovecot 2.3's post-login capabilities with MOVE (and, for the second server, UIDPLUS) taken out.
_BASE_CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE LIST-EXTENDED "
    "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY "
    "SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)


@pytest.fixture(scope="module")
def dovecot_without_move() -> Iterator[Dovecot]:
    with Dovecot.started(f"imap_capability = {_BASE_CAPABILITIES} UIDPLUS\n") as server:
        yield server


@pytest.fixture(scope="module")
def dovecot_without_move_or_uidplus() -> Iterator[Dovecot]:
    with Dovecot.started(f"imap_capability = {_BASE_CAPABILITIES}\n") as server:
        yield server


@dataclass
class Inbox:
    """One user's mailbox with two messages: `mine` (to move) and `theirs` (another client flagged it)."""

    dovecot: Dovecot
    user: MailUser
    domain: Domain

    async def uid_of(self, subject: str) -> int:
        listing = await call(self.domain, "list_messages", {"mailbox": "me"})
        return next(m["uid"] for m in listing["messages"] if m["subject"] == subject)

    async def other_client(self, *commands: tuple[str, ...]) -> list[bytes]:
        """Run UID commands in INBOX over a second, independent IMAP connection; the last one's data."""

        def run() -> list[bytes]:
            conn = imaplib.IMAP4("127.0.0.1", self.dovecot.port)
            try:
                conn.login(self.user.name, self.user.password)
                conn.select("INBOX")
                data: list[bytes] = []
                for command in commands:
                    typ, data = conn.uid(*command)
                    assert typ == "OK", (command, data)
                return data
            finally:
                conn.logout()  # LOGOUT, not CLOSE: CLOSE would expunge on its own

        return await anyio.to_thread.run_sync(run)

    async def inbox_uids(self) -> set[int]:
        data = await self.other_client(("SEARCH", "ALL"))
        return {int(u) for u in data[0].split()}


async def _inbox(dovecot: Dovecot) -> AsyncIterator[Inbox]:
    user = dovecot.add_user()
    for subject in ("mine", "theirs"):
        user.deliver(f"From: a@example.test\r\nTo: {user.address}\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())
    domain = create(ServerSettings(name="mail", config={"accounts": [dovecot.account(user, name="me")]}))
    inbox = Inbox(dovecot, user, domain)
    theirs = await inbox.uid_of("theirs")
    await inbox.other_client(("STORE", str(theirs), "+FLAGS", "(\\Deleted)"))
    try:
        yield inbox
    finally:
        await domain.service.aclose()


@pytest.fixture
async def inbox_without_move(dovecot_without_move: Dovecot) -> AsyncIterator[Inbox]:
    async for inbox in _inbox(dovecot_without_move):
        yield inbox


@pytest.fixture
async def inbox_without_move_or_uidplus(dovecot_without_move_or_uidplus: Dovecot) -> AsyncIterator[Inbox]:
    async for inbox in _inbox(dovecot_without_move_or_uidplus):
        yield inbox


async def test_move_without_move_extension_removes_only_the_named_message(inbox_without_move: Inbox) -> None:
    inbox = inbox_without_move
    mine, theirs = await inbox.uid_of("mine"), await inbox.uid_of("theirs")
    moved = await call(inbox.domain, "move", {"mailbox": "me", "uids": [mine], "to_folder": "Trash"})
    assert isinstance(moved["moved"][0]["new_uid"], int)
    assert await inbox.inbox_uids() == {theirs}
    trash = await call(inbox.domain, "list_messages", {"mailbox": "me", "folder": "Trash"})
    assert [m["subject"] for m in trash["messages"]] == ["mine"]


async def test_move_without_move_or_uidplus_is_refused_and_changes_nothing(
    inbox_without_move_or_uidplus: Inbox,
) -> None:
    inbox = inbox_without_move_or_uidplus
    mine, theirs = await inbox.uid_of("mine"), await inbox.uid_of("theirs")
    error = await call_error(inbox.domain, "move", {"mailbox": "me", "uids": [mine], "to_folder": "Trash"})
    assert error.code == "unsupported"
    assert error.data == {"missing_capability": ["MOVE", "UIDPLUS"]}
    assert await inbox.inbox_uids() == {mine, theirs}
    flags = await inbox.other_client(("FETCH", str(mine), "(FLAGS)"))
    assert b"\\Deleted" not in flags[0]
    assert (await call(inbox.domain, "list_messages", {"mailbox": "me", "folder": "Trash"}))["total"] == 0


async def test_delete_without_uidplus_is_refused_for_trash_and_permanent_alike(
    inbox_without_move_or_uidplus: Inbox,
) -> None:
    inbox = inbox_without_move_or_uidplus
    mine, theirs = await inbox.uid_of("mine"), await inbox.uid_of("theirs")
    to_trash = await call_error(inbox.domain, "delete", {"mailbox": "me", "uids": [mine]})
    permanent = await call_error(inbox.domain, "delete", {"mailbox": "me", "uids": [mine], "permanent": True})
    assert (to_trash.code, permanent.code) == ("unsupported", "unsupported")
    assert permanent.data == {"missing_capability": ["UIDPLUS"]}
    assert await inbox.inbox_uids() == {mine, theirs}
