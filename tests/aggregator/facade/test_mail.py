"""The mail HTTP API over real HTTP on loopback, backed by the real mail server and dovecot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2
import pytest
from starlette.applications import Starlette

from aggregator.facade.base import DirectFacadeContext
from aggregator.facade.mail import routes
from aggregator.principal import Principal
from tests.support.asgi import serve_asgi
from tests.support.mail_env import MailEnv, dovecot, mail, smtp_sink

pytestmark = pytest.mark.anyio
__all__ = ["dovecot", "mail", "smtp_sink"]  # fixtures used by this module

KEY = "test-master"
READER_KEY = "reader-key"


@dataclass
class Api:
    client: httpx2.AsyncClient
    mail: MailEnv


@pytest.fixture
async def api(mail: MailEnv) -> AsyncIterator[Api]:
    reader = Principal(name="reader", allowed_tools=("mail-inbox", "mail-list_messages", "mail-get_message"))
    ctx = DirectFacadeContext({"mail": mail.domain()}, master_key=KEY, keys={READER_KEY: reader})
    app = Starlette(routes=routes(ctx))
    async with serve_asgi(app) as url:
        headers = {"authorization": f"Bearer {KEY}"}
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            yield Api(client, mail)


async def send(api: Api, subject: str, **extra: object) -> dict:
    body = {"to": [api.mail.bob.address], "subject": subject, "text": f"about {subject}", **extra}
    response = await api.client.post("/mail/alice/send", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def newest_uid(api: Api, mailbox: str = "bob", folder: str = "INBOX") -> int:
    response = await api.client.get(f"/mail/{mailbox}/messages", params={"folder": folder, "limit": 1})
    return int(response.json()["messages"][0]["uid"])


async def test_send_search_read_and_file_a_message_over_http(api: Api) -> None:
    sent = await send(api, "Invoice 7")
    assert sent["accepted"] == [api.mail.bob.address]

    found = await api.client.get("/mail/bob/search", params={"subject": "invoice", "seen": "false"})
    assert found.status_code == 200 and found.json()["total"] == 1
    posted = await api.client.post("/mail/bob/search", json={"text": "about Invoice"})
    assert posted.json()["messages"][0]["message_id"] == sent["message_id"]

    uid = found.json()["messages"][0]["uid"]
    message = await api.client.get(f"/mail/bob/messages/{uid}", params={"include_html": "false"})
    assert message.json()["text"] == "about Invoice 7"

    seen = await api.client.post(f"/mail/bob/messages/{uid}/seen", json={})
    assert seen.json()["updated"][0]["seen"] is True
    flagged = await api.client.post(f"/mail/bob/messages/{uid}/flag", json={"flagged": True})
    assert flagged.json()["updated"][0]["flagged"] is True
    moved = await api.client.post(f"/mail/bob/messages/{uid}/move", json={"to_folder": "Sent"})
    new_uid = moved.json()["moved"][0]["new_uid"]
    deleted = await api.client.delete(f"/mail/bob/messages/{new_uid}", params={"folder": "Sent"})
    assert deleted.status_code == 200 and deleted.json()["moved_to"] == "Trash"

    folders = {f["name"]: f for f in (await api.client.get("/mail/bob/folders")).json()["folders"]}
    assert (folders["INBOX"]["messages"], folders["Trash"]["messages"]) == (0, 1)


async def test_mailboxes_and_unified_inbox(api: Api) -> None:
    await send(api, "hello")
    listed = (await api.client.get("/mail/mailboxes")).json()["mailboxes"]
    assert [m["name"] for m in listed] == ["alice", "bob"]
    inbox = await api.client.get("/mail/inbox", params={"mailboxes": "alice,bob", "limit": 5, "unseen_only": "true"})
    assert inbox.status_code == 200
    assert [(m["mailbox"], m["subject"]) for m in inbox.json()["messages"]] == [("bob", "hello")]
    assert inbox.json()["errors"] == []


async def test_batch_actions_take_uid_lists(api: Api) -> None:
    for n in range(3):
        await send(api, f"batch {n}")
    uids = [m["uid"] for m in (await api.client.get("/mail/bob/messages")).json()["messages"]]
    marked = await api.client.post("/mail/bob/messages/seen", json={"uids": uids})
    assert [u["seen"] for u in marked.json()["updated"]] == [True, True, True]
    gone = await api.client.post("/mail/bob/messages/delete", json={"uids": uids[:2], "permanent": True})
    assert gone.json()["permanent"] is True
    assert (await api.client.get("/mail/bob/messages")).json()["total"] == 1


async def test_attachment_saved_to_storage_through_http(api: Api) -> None:
    await send(api, "with file", attachments=[{"filename": "a.csv", "text": "x,y\n1,2\n"}])
    uid = await newest_uid(api)
    saved = await api.client.post(f"/mail/bob/messages/{uid}/attachments/0/save", json={"bucket": "files"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["filename"] == "a.csv" and saved.json()["saved"]["key"] == f"mail/bob/{uid}/a.csv"
    assert await api.mail.object_bytes("files", f"mail/bob/{uid}/a.csv") == b"x,y\n1,2\n"


async def test_errors_map_to_http_statuses_with_the_field(api: Api) -> None:
    unknown = await api.client.get("/mail/carol/messages")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["field"] == "mailbox" and "alice, bob" in unknown.json()["error"]["message"]

    missing = await api.client.get("/mail/bob/messages/999")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")

    no_folder = await api.client.get("/mail/bob/messages", params={"folder": "Nope"})
    assert (no_folder.status_code, no_folder.json()["error"]["field"]) == (404, "folder")

    bad_address = await api.client.post("/mail/alice/send", json={"to": ["nope"], "text": "x"})
    assert (bad_address.status_code, bad_address.json()["error"]["field"]) == (400, "to[0]")

    rejected = await api.client.post("/mail/alice/send", json={"to": ["ghost@example.test"], "text": "x"})
    assert rejected.status_code == 502 and "550" in rejected.json()["error"]["message"]

    bad_type = await api.client.get("/mail/bob/messages", params={"limit": "many"})
    assert (bad_type.status_code, bad_type.json()["error"]["field"]) == (400, "limit")

    unknown_param = await api.client.get("/mail/bob/messages", params={"colour": "red"})
    assert (unknown_param.status_code, unknown_param.json()["error"]["field"]) == (400, "colour")

    not_json = await api.client.post("/mail/alice/send", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400

    unknown_action = await api.client.post("/mail/bob/messages/1/explode", json={})
    assert unknown_action.status_code == 404


async def test_requests_need_a_key_and_scopes_apply(api: Api) -> None:
    anonymous = await api.client.get("/mail/mailboxes", headers={"authorization": ""})
    assert anonymous.status_code == 401
    wrong = await api.client.get("/mail/mailboxes", headers={"authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    reader = {"authorization": f"Bearer {READER_KEY}"}
    assert (await api.client.get("/mail/bob/messages", headers=reader)).status_code == 200
    refused = await api.client.post("/mail/alice/send", headers=reader, json={"to": [api.mail.bob.address]})
    assert refused.status_code == 404  # out of scope reads as absent, as on the MCP face


async def test_oversized_bodies_are_refused_before_reading_them(api: Api) -> None:
    huge = b"x" * (300 * 1024)
    response = await api.client.post(
        "/mail/bob/messages/seen", content=huge, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
