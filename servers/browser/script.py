"""run_script: several actions in order on one session's page, in one call, under one lock.

Each step is `{"action": <tool name>, "output_id"?: str, ...that tool's arguments}`. A step's
arguments are validated against that tool's own contract, so a script step accepts and refuses
exactly what the tool does. Results of steps with an `output_id` are collected in `outputs`.
`on_error: "stop"` (default) ends the script at the first failed step; `"continue"` records the
failure and goes on. A lost session always ends the script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from servers.browser.env import Env, page_state
from servers.browser.session import Session
from servers.kit import ToolError, ToolResult

# Tools that make no sense inside a script (they manage sessions or scripts themselves).
NOT_IN_SCRIPTS = frozenset({"run_script", "close_session", "sessions"})

StepRunner = Callable[[Env, Session, str, dict[str, Any]], Awaitable["dict[str, Any] | ToolResult"]]
StepValidator = Callable[[str, dict[str, Any], str], None]


async def run_script(
    env: Env, session: Session, args: dict[str, Any], *, run_step: StepRunner, validate: StepValidator
) -> ToolResult:
    stop_on_error = args.get("on_error", "stop") == "stop"
    steps: list[dict[str, Any]] = args["steps"]
    seen_ids: set[str] = set()
    for i, step in enumerate(steps):
        output_id = step.get("output_id")
        if output_id is not None:
            if output_id in seen_ids:
                raise ToolError(f"output_id {output_id!r} is used by two steps", field=f"steps.{i}.output_id")
            seen_ids.add(output_id)
    results: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {}
    links: list[dict[str, Any]] = []
    failed = 0
    stopped = False
    for i, step in enumerate(steps):
        action = step["action"]
        step_args = {k: v for k, v in step.items() if k not in ("action", "output_id")}
        entry: dict[str, Any] = {"index": i, "action": action}
        if "output_id" in step:
            entry["output_id"] = step["output_id"]
        try:
            if action in NOT_IN_SCRIPTS:
                raise ToolError(f"{action} cannot run inside a script", field=f"steps.{i}.action")
            if "session" in step_args:
                raise ToolError(
                    "steps run in the script's session; leave 'session' out of steps", field=f"steps.{i}.session"
                )
            validate(action, step_args, f"steps.{i}")
            outcome = await run_step(env, session, action, step_args)
        except ToolError as exc:
            failed += 1
            entry["ok"] = False
            entry["error"] = {k: v for k, v in exc.to_dict().items() if k in ("code", "message", "field")}
            results.append(entry)
            if (exc.data or {}).get("session_lost"):
                raise
            if stop_on_error:
                stopped = True
                break
            continue
        structured = outcome.structured if isinstance(outcome, ToolResult) else outcome
        if isinstance(outcome, ToolResult):
            links.extend(c for c in outcome.content if c.get("type") == "resource_link")
        entry["ok"] = True
        entry["result"] = structured
        if "output_id" in step:
            outputs[step["output_id"]] = structured
        results.append(entry)
    state = await page_state(session)
    state.update(completed=not stopped, failed=failed, steps=results, outputs=outputs)
    return ToolResult(structured=state, content=links)
