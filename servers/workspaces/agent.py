"""The built-in agent: a tool-use loop over `models-chat`, called through the hub like any tool.

Each turn sends the conversation (system prompt, the session's transcript, the new prompt and
everything since) with the workspace tools; tool calls are run and answered; a message without
tool calls is the answer. With a JSON schema the answer must parse and validate, or the model
is told what is wrong and asked again (`max_schema_retries` times). New messages are appended to
the session's transcript after every turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from servers.kit import HubCaller, ToolError
from servers.kit.context import acting_for
from servers.kit.errors import error_from_result, error_result, structured_of
from servers.workspaces.agent_tools import Toolbox
from servers.workspaces.runs import Run
from servers.workspaces.sessions import Session

CHAT_TOOL = "models-chat"
LIST_MODELS_TOOL = "models-list_models"

DEFAULT_SYSTEM_PROMPT = (
    "You are an agent working in the workspace '{workspace}', a directory of files. Use the tools to "
    "list, read, write and delete files and to run shell commands there; paths are relative to the "
    "workspace. Work step by step and check what your commands did. When the task is done, reply with "
    "a short, direct answer for the user and no tool call."
)
SCHEMA_INSTRUCTION = (
    "Your final answer must be a single JSON value, with no other text, that validates against this "
    "JSON schema:\n{schema}"
)


@dataclass
class AgentRequest:
    prompt: str
    model: str
    system_prompt: str | None = None
    append_system_prompt: str | None = None
    json_schema: dict[str, Any] | None = None
    effort: str | None = None
    max_turns: int = 30


def check_json_answer(text: str, validator: Draft202012Validator) -> tuple[Any, str | None]:
    """`(value, None)` when `text` is JSON valid for the schema, else `(None, what is wrong)`."""
    candidate = text.strip()
    if candidate.startswith("```"):  # models like to fence JSON even when told not to
        candidate = candidate.strip("`").removeprefix("json").strip()
    try:
        value = orjson.loads(candidate)
    except orjson.JSONDecodeError as exc:
        return None, f"the answer is not JSON ({exc})"
    error = best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return None, f"the answer does not match the schema at {where}: {error.message}"
    return value, None


def _clean_assistant(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant message as it goes back into the conversation (only what chat APIs accept)."""
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = []
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments or {}).decode()
        calls.append(
            {
                "id": call.get("id") or f"call_{index}",
                "type": "function",
                "function": {"name": function.get("name", ""), "arguments": arguments},
            }
        )
    if calls:
        out["tool_calls"] = calls
    return out


def _parsed(arguments: str) -> Any:
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments


class BuiltinAgent:
    def __init__(self, hub: HubCaller | None, toolbox: Toolbox, *, model_call_timeout: float, max_schema_retries: int):
        self.hub = hub
        self.toolbox = toolbox
        self.model_call_timeout = model_call_timeout
        self.max_schema_retries = max_schema_retries

    def _require_hub(self) -> HubCaller:
        if self.hub is None:
            raise ToolError(
                "the built-in agent calls models-chat through the hub, and this server runs without one "
                "(run it under a toolmux hub, or configure an external agent)",
                code="unavailable",
            )
        return self.hub

    async def _call(self, name: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """A hub call's result; a hub that raises (unreachable, unknown tool) gives an error result too."""
        hub = self._require_hub()
        try:
            # The agent's own model calls are the workspaces server's (the operator chose its model
            # for whoever may run agents); the tools the model calls act for the run's caller.
            with acting_for(None):
                return await hub.call_tool(name, arguments, timeout=timeout)
        except ToolError as exc:
            return error_result(exc)

    async def check_model(self, model: str) -> None:
        """Refuse an alias the models server does not know, before anything is started or written."""
        result = await self._call(LIST_MODELS_TOOL, {}, 30.0)
        error = error_from_result(result)
        if error is not None:
            if error.code == "not_found":
                raise ToolError(
                    "the built-in agent needs the models server (models-list_models is not reachable)",
                    code="unavailable",
                )
            raise ToolError(f"could not list the model aliases: {error.message}", code=error.code)
        known = [
            str(m.get("id")) for m in structured_of(result, LIST_MODELS_TOOL).get("data", []) if isinstance(m, dict)
        ]
        if model not in known:
            raise ToolError(
                f"unknown model alias {model!r}; the models server has: {', '.join(known) or '(none configured)'}",
                code="not_found",
                field="model",
            )

    def system_prompt(self, run: Run, request: AgentRequest) -> str:
        text = request.system_prompt or DEFAULT_SYSTEM_PROMPT.format(workspace=run.workspace.name)
        if request.append_system_prompt:
            text += "\n\n" + request.append_system_prompt
        if request.json_schema is not None:
            text += "\n\n" + SCHEMA_INSTRUCTION.format(schema=orjson.dumps(request.json_schema).decode())
        return text

    async def _chat(self, run: Run, request: AgentRequest, messages: list[dict[str, Any]]) -> dict[str, Any]:
        args: dict[str, Any] = {"model": request.model, "messages": messages, "tools": await self.toolbox.specs()}
        if request.effort:
            args["reasoning_effort"] = request.effort
        if request.json_schema is not None:
            args["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.json_schema},
            }
        result = await self._call(CHAT_TOOL, args, self.model_call_timeout)
        error = error_from_result(result)
        if error is not None:
            if error.field == "model" or (error.code == "not_found" and "model" in error.message):
                raise ToolError(
                    f"unknown model alias {request.model!r}: {error.message}", code="not_found", field="model"
                )
            raise ToolError(
                f"the model call failed (turn {run.state.num_turns + 1}): {error.message}",
                code=error.code,
                retryable=error.retryable,
                retry_after=error.retry_after,
            )
        return structured_of(result, CHAT_TOOL)

    async def run(self, run: Run, request: AgentRequest, session: Session) -> None:
        state = run.state
        validator = Draft202012Validator(request.json_schema) if request.json_schema is not None else None
        user = {"role": "user", "content": request.prompt}
        messages = [{"role": "system", "content": self.system_prompt(run, request)}, *session.messages, user]
        unsaved: list[dict[str, Any]] = [user]
        schema_retries = 0

        def save() -> None:
            session.append([{"type": "message", "run_id": run.id, "message": m} for m in unsaved])
            session.messages.extend(unsaved)
            unsaved.clear()

        try:
            while state.num_turns < request.max_turns:
                answer = await self._chat(run, request, messages)
                state.num_turns += 1
                state.usage.add(answer.get("usage"))
                state.total_cost += float((answer.get("toolmux") or {}).get("cost") or 0.0)
                choice = (answer.get("choices") or [{}])[0]
                message = _clean_assistant(choice.get("message") or {})
                messages.append(message)
                unsaved.append(message)
                text = message.get("content") or ""
                calls = message.get("tool_calls") or []
                state.turns.append(
                    {
                        "type": "assistant",
                        "turn": state.num_turns,
                        "content": text,
                        "finish_reason": choice.get("finish_reason"),
                    }
                )
                await run.emit(
                    "assistant", turn=state.num_turns, text=text, tool_calls=[c["function"]["name"] for c in calls]
                )
                for call in calls:
                    await self._answer_call(run, call, messages, unsaved)
                save()
                if calls:
                    continue
                if validator is not None:
                    value, problem = check_json_answer(text, validator)
                    if problem is not None:
                        if schema_retries < self.max_schema_retries:
                            schema_retries += 1
                            retry = {
                                "role": "user",
                                "content": f"{problem}. Reply again with only the JSON value that matches the schema.",
                            }
                            messages.append(retry)
                            unsaved.append(retry)
                            continue
                        state.result, state.is_error, state.error_code = text, True, "invalid_output"
                        return
                    state.structured = value
                state.result = text
                return
            state.is_error = True
            state.error_code = "max_turns"
            state.result = f"stopped after {request.max_turns} turns without a final answer"
        finally:
            if unsaved and state.num_turns > 0:
                save()  # what a cancelled run did stays in the transcript

    async def _answer_call(
        self, run: Run, call: dict[str, Any], messages: list[dict[str, Any]], unsaved: list[dict[str, Any]]
    ) -> None:
        function = call["function"]
        name, arguments = function["name"], function["arguments"]
        run.state.turns.append({"type": "tool_call", "id": call["id"], "name": name, "arguments": _parsed(arguments)})
        await run.emit("tool_call", id=call["id"], name=name, arguments=arguments)
        text, is_error = await self.toolbox.call(run, name, arguments)
        reply = {"role": "tool", "tool_call_id": call["id"], "content": text}
        messages.append(reply)
        unsaved.append(reply)
        run.state.turns.append(
            {"type": "tool_result", "id": call["id"], "name": name, "content": text, "is_error": is_error}
        )
        await run.emit("tool_result", id=call["id"], name=name, is_error=is_error, content=text[:2000])
