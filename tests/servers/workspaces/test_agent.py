"""The built-in agent end to end: real models domain, real tool calls, real files and shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.servers.workspaces.conftest import COST_PER_CALL, Env, workspaces_env
from tests.servers.workspaces.fakes import ScriptedOpenAI, Turn, prompt_of, tool_results

pytestmark = pytest.mark.anyio


async def test_agent_writes_a_file_counts_its_lines_with_wc_and_answers(env: Env) -> None:
    result = await env.ok("run", {"prompt": "Make a list and count it", "workspace": "demo", "output": "json-verbose"})
    assert (env.root / "demo" / "notes" / "list.txt").read_text() == "alpha\nbeta\ngamma\n"
    assert result["result"] == "wc says: 3 notes/list.txt"
    assert result["status"] == "completed" and result["is_error"] is False
    assert result["num_turns"] == 3
    assert result["usage"] == {"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45}
    assert result["total_cost"] == pytest.approx(3 * COST_PER_CALL)
    assert result["duration_ms"] >= 0 and result["run_id"].startswith("run_") and result["session_id"]
    kinds = [(t["type"], t.get("name")) for t in result["turns"]]
    assert kinds == [
        ("assistant", None),
        ("tool_call", "write_file"),
        ("tool_result", "write_file"),
        ("assistant", None),
        ("tool_call", "run_shell"),
        ("tool_result", "run_shell"),
        ("assistant", None),
    ]
    shell_result = result["turns"][5]
    assert shell_result["is_error"] is False and "3 notes/list.txt" in shell_result["content"]
    assert result["turns"][4]["arguments"] == {"command": "wc -l notes/list.txt"}
    # The model was offered the workspace tools, and the real models server answered every turn.
    offered = {t["function"]["name"] for t in env.fake.chat_requests[0].body["tools"]}
    assert {"read_file", "write_file", "list_files", "delete_file", "run_shell"} <= offered
    assert env.hub.calls.count("models-chat") == 3


async def test_plain_json_output_leaves_turns_out(env: Env) -> None:
    result = await env.ok("run", {"prompt": "count", "workspace": "plain"})
    assert "turns" not in result and result["num_turns"] == 3


async def test_progress_events_tell_the_story_of_the_run(env: Env) -> None:
    result = await env.ok("run", {"prompt": "count", "workspace": "events"})
    kinds = env.kinds(result["run_id"])
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("assistant") == 3 and kinds.count("tool_call") == 2 and kinds.count("process_started") == 1


async def test_a_run_continues_the_workspace_session_and_no_continue_starts_fresh(env: Env) -> None:
    first = await env.ok("run", {"prompt": "Make a list and count it", "workspace": "talk"})
    env.fake.policy = lambda body: Turn(content=f"I see {len(body['messages'])} messages")
    second = await env.ok("run", {"prompt": "What did you do?", "workspace": "talk"})
    assert second["session_id"] == first["session_id"]
    sent = env.fake.chat_requests[-1].body["messages"]
    # system, the first run's user + 3 assistant + 2 tool messages, then the new prompt
    assert [m["role"] for m in sent] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert sent[1]["content"] == "Make a list and count it" and sent[-1]["content"] == "What did you do?"
    fresh = await env.ok("run", {"prompt": "Start over", "workspace": "talk", "no_continue": True})
    assert fresh["session_id"] != first["session_id"]
    assert [m["role"] for m in env.fake.chat_requests[-1].body["messages"]] == ["system", "user"]


async def test_resume_picks_up_a_session_after_a_restart(tmp_path: Path, fake: ScriptedOpenAI) -> None:
    async with workspaces_env(tmp_path, fake) as first_life:
        first = await first_life.ok("run", {"prompt": "Make a list and count it", "workspace": "long/lived"})
        await first_life.ok("run", {"prompt": "Again, separately", "workspace": "long/lived", "no_continue": True})
    fake.policy = lambda body: Turn(content="resumed")
    async with workspaces_env(tmp_path, fake) as second_life:
        sessions = await second_life.ok("list_sessions", {"workspace": "long/lived"})
        assert {s["session_id"] for s in sessions["sessions"]} >= {first["session_id"]}
        resumed = await second_life.ok(
            "run", {"prompt": "And now?", "workspace": "long/lived", "resume": first["session_id"]}
        )
    assert resumed["session_id"] == first["session_id"] and resumed["result"] == "resumed"
    sent = fake.chat_requests[-1].body["messages"]
    assert sent[1]["content"] == "Make a list and count it" and len(sent) == 8
    assert any("wc says" in str(m.get("content")) for m in sent)


async def test_json_schema_run_returns_valid_json_after_one_correction(env: Env) -> None:
    schema = {
        "type": "object",
        "properties": {"lines": {"type": "integer"}, "file": {"type": "string"}},
        "required": ["lines", "file"],
        "additionalProperties": False,
    }
    answers = iter([Turn(content='{"lines": "three", "file": "x"}'), Turn(content='{"lines": 3, "file": "x"}')])
    env.fake.policy = lambda body: next(answers)
    result = await env.ok("run", {"prompt": "How many lines?", "workspace": "schema", "json_schema": schema})
    assert result["structured_output"] == {"lines": 3, "file": "x"}
    assert orjson.loads(result["result"]) == {"lines": 3, "file": "x"}
    assert result["num_turns"] == 2 and result["is_error"] is False
    first, second = (r.body for r in env.fake.chat_requests[-2:])
    assert first["response_format"]["json_schema"]["schema"] == schema
    assert "does not match the schema at lines" in second["messages"][-1]["content"]


async def test_json_schema_answers_that_stay_invalid_end_as_an_error(env: Env) -> None:
    env.fake.policy = lambda body: Turn(content="not json at all")
    result = await env.ok(
        "run", {"prompt": "JSON please", "workspace": "schema-bad", "json_schema": {"type": "object"}}
    )
    assert result["is_error"] is True and result["error_code"] == "invalid_output"
    assert result["num_turns"] == 3  # the answer and max_schema_retries (2) re-asks


async def test_an_invalid_json_schema_is_refused_naming_the_field(env: Env) -> None:
    error = await env.error("run", {"prompt": "x", "workspace": "w", "json_schema": {"type": "no-such-type"}})
    assert error.field == "json_schema" and error.code == "invalid_argument"


async def test_unknown_model_alias_is_refused_before_anything_happens(env: Env) -> None:
    error = await env.error("run", {"prompt": "x", "workspace": "untouched", "model": "gpt-nope"})
    assert error.code == "not_found" and error.field == "model"
    assert "gpt-nope" in error.message and "main" in error.message
    assert env.fake.chat_requests == []
    assert not (env.root / "untouched").exists()
    assert (await env.ok("list_workspaces", {}))["workspaces"] == []


async def test_unknown_session_id_is_a_clear_error(env: Env) -> None:
    await env.ok("write_file", {"workspace": "here", "path": "a.txt", "text": "a"})
    error = await env.error("run", {"prompt": "x", "workspace": "here", "resume": "0123abcd"})
    assert error.code == "not_found" and error.field == "resume" and "0123abcd" in error.message
    error = await env.error("run", {"prompt": "x", "workspace": "here", "resume": "../../etc/passwd"})
    assert error.code == "invalid_argument" and error.field == "resume"
    assert env.fake.chat_requests == []


async def test_a_bad_tool_call_from_the_model_is_answered_and_the_run_goes_on(env: Env) -> None:
    def policy(body: dict[str, Any]) -> Turn:
        results = tool_results(body)
        if not results:
            return Turn(calls=[("read_file", {"path": "../../../etc/passwd"}), ("no_such_tool", {})])
        return Turn(content=" | ".join(results))

    env.fake.policy = policy
    result = await env.ok("run", {"prompt": "Try to escape", "workspace": "jail", "output": "json-verbose"})
    errors = [t for t in result["turns"] if t["type"] == "tool_result"]
    assert [e["is_error"] for e in errors] == [True, True]
    assert "contains '..'" in errors[0]["content"] and "there is no tool 'no_such_tool'" in errors[1]["content"]
    assert result["status"] == "completed"


async def test_max_turns_stops_a_model_that_never_answers(env: Env) -> None:
    env.fake.policy = lambda body: Turn(calls=[("list_files", {})])
    result = await env.ok("run", {"prompt": "loop", "workspace": "loop", "max_turns": 2})
    assert result["is_error"] is True and result["error_code"] == "max_turns" and result["num_turns"] == 2


async def test_allow_listed_hub_tools_are_offered_and_called_through_the_hub(
    tmp_path: Path, fake: ScriptedOpenAI
) -> None:
    def policy(body: dict[str, Any]) -> Turn:
        results = tool_results(body)
        if not results:
            return Turn(calls=[("demo-add", {"a": 2, "b": 40})])
        return Turn(content=f"the hub said {results[0]}")

    fake.policy = policy
    async with workspaces_env(tmp_path, fake, hub_tools=["demo-add"]) as env:
        result = await env.ok("run", {"prompt": "add", "workspace": "hubby"})
        status = await env.ok("status", {})
    assert result["result"] == 'the hub said {"sum":42}'
    assert "demo-add" in env.hub.calls and status["hub_tools"] == ["demo-add"]
    offered = {t["function"]["name"] for t in fake.chat_requests[0].body["tools"]}
    assert "demo-add" in offered and "demo-echo" not in offered


async def test_system_prompt_replace_and_append_and_effort_reach_the_model(env: Env) -> None:
    env.fake.policy = lambda body: Turn(content=prompt_of(body))
    await env.ok(
        "run",
        {
            "prompt": "hi",
            "workspace": "sys",
            "system_prompt": "You are terse.",
            "append_system_prompt": "Answer in French.",
            "effort": "high",
        },
    )
    body = env.fake.chat_requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "You are terse.\n\nAnswer in French."}
    assert body["reasoning_effort"] == "high"


async def test_without_a_models_server_the_built_in_agent_says_it_is_unavailable(
    tmp_path: Path, fake: ScriptedOpenAI
) -> None:
    async with workspaces_env(tmp_path, fake) as env:
        del env.hub.domains["models"]
        error = await env.error("run", {"prompt": "x", "workspace": "w"})
    assert error.code == "unavailable" and "models" in error.message
