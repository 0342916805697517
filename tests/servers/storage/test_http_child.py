"""The face a storage child serves on its socket: only the hub (holding the token) is heard."""

from __future__ import annotations

from pathlib import Path

import httpx2
import orjson
import pytest

from servers.storage.http.child import ChildFaceApp
from servers.storage.http.hooks import FACE_REQUEST_ID, FACE_TOKEN, FORWARDED_AUTH, ForwardedAuth
from tests.support.storage import make_service

pytestmark = pytest.mark.anyio
TOKEN = "the-token-only-the-hub-holds"


def _auth(**answers: object) -> str:
    return orjson.dumps(answers).decode()


async def test_requests_without_the_hubs_token_are_refused_whatever_they_claim(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    app = ChildFaceApp(service, TOKEN)
    master = _auth(caller={"name": "master", "is_master": True})
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://storage") as http:
        refused = await http.put(
            "/storage/default/k", content=b"x", headers={FORWARDED_AUTH: master, "authorization": "Bearer m"}
        )
        assert refused.status_code == 403
        stored = await http.put(
            "/storage/default/k",
            content=b"x",
            headers={FORWARDED_AUTH: master, FACE_TOKEN: TOKEN, "authorization": "Bearer m", FACE_REQUEST_ID: "r1"},
        )
        assert stored.status_code == 200
        # The hub sends x-request-id on the answer itself; the child's face must not add a second one.
        assert "x-request-id" not in stored.headers and stored.headers["x-amz-request-id"] == "r1"
    service.close()


def test_forwarded_answers_are_used_only_for_what_they_name() -> None:
    auth = ForwardedAuth(
        _auth(
            signer={"id": "writer", "secret": "s3cret", "caller": {"name": "writer", "allowed": ["storage-*"]}},
            minter={"name": "reader", "caller": None},
        )
    )
    signer = auth.signing_secret("writer")
    assert signer is not None and signer[0] == "s3cret" and signer[1].may_call("storage-put_object")
    assert not signer[1].may_call("models-chat")
    assert auth.signing_secret("someone-else") is None
    assert auth.caller_named("reader") is None  # the hub said: that key no longer exists
    assert ForwardedAuth("not json").caller_named("reader") is None
