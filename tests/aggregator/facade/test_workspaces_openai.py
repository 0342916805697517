"""`workspace:<alias>` models on /v1/chat/completions, driven by the real `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from tests.aggregator.facade.workspaces_support import (
    MASTER_KEY,
    CommandWatch,
    Face,
    serve_scripted,
)
from tests.servers.workspaces.fakes import ScriptedOpenAI, Turn
from tests.servers.workspaces.procs import group_members, wait_gone

pytestmark = pytest.mark.anyio

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "count"}]


@pytest.fixture
async def face(tmp_path: Path, _scripted: ScriptedOpenAI) -> AsyncIterator[Face]:
    async with serve_scripted(tmp_path, _scripted) as running:
        yield running


@pytest.fixture
async def client(face: Face) -> AsyncIterator[openai.AsyncOpenAI]:
    headers = {"X-Toolmux-Workspace": "chat/team"}
    async with openai.AsyncOpenAI(
        base_url=face.url + "/v1", api_key=MASTER_KEY, max_retries=0, timeout=30, default_headers=headers
    ) as sdk:
        yield sdk


async def test_a_workspace_model_answers_with_the_run_result(face: Face, client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(model="workspace:main", messages=PROMPT)  # type: ignore[arg-type]
    completion = raw.parse()
    assert completion.choices[0].message.content == "wc says: 3 notes/list.txt"
    assert completion.choices[0].finish_reason == "stop" and completion.model == "workspace:main"
    assert completion.usage is not None and completion.usage.total_tokens == 45
    assert raw.headers["x-toolmux-run-id"].startswith("run_") and raw.headers["x-toolmux-turns"] == "3"
    assert (face.env.root / "chat" / "team" / "notes" / "list.txt").exists()
    system = face.env.fake.chat_requests[0].body["messages"][0]["content"]
    assert system.endswith("Be brief.")  # system messages are appended to the agent's system prompt


async def test_continue_header_carries_on_with_the_session(face: Face, client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.with_raw_response.create(model="workspace:main", messages=PROMPT)  # type: ignore[arg-type]
    face.env.fake.policy = lambda body: Turn(content=f"{len(body['messages'])} messages")
    follow = [{"role": "user", "content": "and now?"}]
    continued = await client.chat.completions.with_raw_response.create(
        model="workspace:main",
        messages=follow,  # type: ignore[arg-type]
        extra_headers={"X-Toolmux-Continue": "true"},
    )
    assert continued.headers["x-toolmux-session-id"] == first.headers["x-toolmux-session-id"]
    assert continued.parse().choices[0].message.content == "8 messages"
    fresh = await client.chat.completions.with_raw_response.create(model="workspace:main", messages=follow)  # type: ignore[arg-type]
    assert fresh.headers["x-toolmux-session-id"] != first.headers["x-toolmux-session-id"]
    resumed = await client.chat.completions.with_raw_response.create(
        model="workspace:main",
        messages=follow,  # type: ignore[arg-type]
        extra_headers={"X-Toolmux-Continue": first.headers["x-toolmux-session-id"]},
    )
    assert resumed.headers["x-toolmux-session-id"] == first.headers["x-toolmux-session-id"]


async def test_streaming_sends_activity_as_reasoning_then_the_result(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="workspace:main",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(str(getattr(c.choices[0].delta, "reasoning_content", "") or "") for c in chunks if c.choices)
    assert content == "wc says: 3 notes/list.txt"
    assert "-> write_file" in reasoning and "-> run_shell" in reasoning and "run_shell: done" in reasoning
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 45


async def test_missing_workspace_header_and_unknown_alias_are_openai_errors(face: Face) -> None:
    async with openai.AsyncOpenAI(base_url=face.url + "/v1", api_key=MASTER_KEY, max_retries=0) as bare:
        with pytest.raises(openai.BadRequestError) as missing:
            await bare.chat.completions.create(model="workspace:main", messages=PROMPT)  # type: ignore[arg-type]
        assert missing.value.body["param"] == "x-toolmux-workspace"  # type: ignore[index]
        with pytest.raises(openai.NotFoundError) as unknown:
            await bare.chat.completions.create(
                model="workspace:nope",
                messages=PROMPT,  # type: ignore[arg-type]
                extra_headers={"X-Toolmux-Workspace": "w"},
            )
        assert unknown.value.body["code"] == "model_not_found"  # type: ignore[index]
        plain = await bare.chat.completions.create(model="main", messages=PROMPT)  # type: ignore[arg-type]
    assert plain.choices[0].message.tool_calls  # an ordinary model call still goes straight to the model


async def test_a_busy_workspace_answers_503_and_a_dropped_stream_stops_its_run(
    face: Face, client: openai.AsyncOpenAI
) -> None:
    watch = CommandWatch(face.env)
    long_prompt: Any = [{"role": "user", "content": "long"}]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:

            async def stream_and_drop() -> None:
                stream = await client.chat.completions.create(model="workspace:main", messages=long_prompt, stream=True)
                async for _ in stream:
                    pass

            tg.start_soon(stream_and_drop)
            await watch.ready.wait()
            assert watch.leader is not None
            processes = group_members(watch.leader)
            with pytest.raises(openai.InternalServerError):  # 503: busy is retryable
                await client.chat.completions.create(model="workspace:main", messages=PROMPT)  # type: ignore[arg-type]
            tg.cancel_scope.cancel()
        await wait_gone(processes)
