"""External agents: a configured CLI run in the workspace, its JSON output mapped onto a run result.

The command template's `{placeholders}` are filled per run (each argv element separately, so a
prompt is one argument whatever it contains; nothing goes through a shell). The CLI runs in its
own process group with the workspace as working directory; cancelling the run kills the group.
Its stdout is read as JSON: the whole of it, or else the last line that is a JSON object (what
"print / JSON mode" and stream-JSON modes of agent CLIs end with). Plain text is taken as the
answer when the CLI exits 0.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from servers.workspaces.agent import AgentRequest, check_json_answer
from servers.workspaces.config import ExternalAgentConfig
from servers.workspaces.process import ProcessResult, ProcessSpec, run_process
from servers.workspaces.runs import Run
from servers.workspaces.sessions import Session
from servers.workspaces.shell import scrubbed_env

DEFAULT_FIELDS: dict[str, list[str]] = {
    "result": ["result", "response", "output", "text"],
    "is_error": ["is_error", "isError"],
    "session_id": ["session_id", "sessionId", "thread_id"],
    "num_turns": ["num_turns"],
    "total_cost": ["total_cost_usd", "total_cost", "cost_usd", "cost"],
    "prompt_tokens": ["usage.input_tokens", "usage.prompt_tokens"],
    "completion_tokens": ["usage.output_tokens", "usage.completion_tokens"],
    "structured_output": ["structured_output"],
}
MISSING = object()


def dig(data: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


def last_json_object(stdout: bytes) -> dict[str, Any] | None:
    try:
        whole = orjson.loads(stdout)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        return whole
    if isinstance(whole, list):  # a list of events: the last object wins
        objects = [item for item in whole if isinstance(item, dict)]
        return objects[-1] if objects else None
    for raw_line in reversed(stdout.splitlines()):
        line = raw_line.strip()
        if line.startswith(b"{"):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


class ExternalAgent:
    def __init__(self, name: str, config: ExternalAgentConfig) -> None:
        self.name = name
        self.config = config
        self.fields = {**DEFAULT_FIELDS, **config.fields}

    def argv(self, values: dict[str, str], *, resume: bool) -> list[str]:
        config = self.config

        def fill(args: list[str]) -> list[str]:
            return [arg.format_map(values) for arg in args]

        argv = fill(config.command)
        for wanted, args in (
            (resume, config.resume_args),
            (bool(values["model"]), config.model_args),
            (bool(values["system_prompt"]), config.system_prompt_args),
            (bool(values["append_system_prompt"]), config.append_system_prompt_args),
            (bool(values["json_schema"]), config.json_schema_args),
            (bool(values["effort"]), config.effort_args),
            (bool(values["max_turns"]), config.max_turns_args),
        ):
            if wanted:
                argv += fill(args)
        return argv

    def env(self, workspace_dir: str) -> dict[str, str]:
        env = scrubbed_env(workspace_dir)
        env["PATH"] = os.environ.get("PATH", env["PATH"])  # the operator's CLI may live anywhere on it
        for name in self.config.pass_env:
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.config.env)
        return env

    def field(self, data: dict[str, Any], name: str) -> Any:
        for path in self.fields.get(name, []):
            value = dig(data, path)
            if value is not MISSING and value is not None:
                return value
        return MISSING

    async def run(self, run: Run, request: AgentRequest, session: Session, *, model: str | None) -> None:
        values = {
            "prompt": request.prompt,
            "workspace": run.workspace.name,
            "workspace_dir": run.workspace.dir,
            "model": model or "",
            "session_id": session.external_id or "",
            "system_prompt": request.system_prompt or "",
            "append_system_prompt": request.append_system_prompt or "",
            "json_schema": orjson.dumps(request.json_schema).decode() if request.json_schema is not None else "",
            "effort": request.effort or "",
            "max_turns": str(request.max_turns) if request.max_turns else "",
        }
        argv = self.argv(values, resume=bool(session.external_id))

        async def started(pid: int) -> None:
            run.processes.add(pid)
            await run.emit("process_started", pid=pid, command=argv[0])

        def output(piece: bytes) -> None:
            run.notify("process_output", data=piece)

        spec = ProcessSpec(
            argv=argv,
            cwd=run.workspace.dir,
            env=self.env(run.workspace.dir),
            timeout=self.config.timeout,
            output_cap=self.config.max_output_bytes,
            merge_stderr=False,
            keep_tail=False,
            on_start=started,
            on_output=output,
        )
        user = {"role": "user", "content": request.prompt}
        try:
            outcome = await run_process(spec)
        except OSError as exc:
            run.state.is_error = True
            run.state.error_code = "unavailable"
            run.state.result = f"agent {self.name!r} could not be started: {exc.strerror} ({argv[0]})"
            return
        finally:
            run.processes.clear()
        external_id = self._apply(run, request, outcome)
        if external_id:
            session.external_id = external_id
        records: list[dict[str, Any]] = [
            {"type": "message", "run_id": run.id, "message": user},
            {"type": "message", "run_id": run.id, "message": {"role": "assistant", "content": run.state.result}},
        ]
        if session.external_id:
            records.append({"type": "external", "run_id": run.id, "external_session_id": session.external_id})
        session.append(records)

    def _apply(self, run: Run, request: AgentRequest, outcome: ProcessResult) -> str | None:
        """Fill the run's state from what the CLI printed; the CLI's own session id, if it gave one."""
        state = run.state
        stdout = outcome.stdout.bytes()
        stderr = outcome.stderr.text().strip() if outcome.stderr is not None else ""
        if outcome.timed_out:
            state.is_error, state.error_code = True, "timeout"
            state.result = f"agent {self.name!r} did not finish within {self.config.timeout:g} s and was killed"
            return None
        if outcome.stdout.truncated:
            state.is_error, state.error_code = True, "too_large"
            state.result = f"agent {self.name!r} wrote more than {self.config.max_output_bytes} bytes of output"
            return None
        data = last_json_object(stdout)
        if data is None:
            text = stdout.decode("utf-8", "replace").strip()
            state.result = text if outcome.exit_code == 0 else (stderr or text or f"exit code {outcome.exit_code}")
            state.is_error = outcome.exit_code != 0
            state.error_code = "agent_failed" if state.is_error else None
            return None
        result = self.field(data, "result")
        state.result = (
            result if isinstance(result, str) else ("" if result is MISSING else orjson.dumps(result).decode())
        )
        is_error = self.field(data, "is_error")
        state.is_error = bool(is_error) if is_error is not MISSING else outcome.exit_code != 0
        if state.is_error:
            state.error_code = "agent_failed"
            state.result = state.result or stderr or f"exit code {outcome.exit_code}"
        session_id = self.field(data, "session_id")
        turns = self.field(data, "num_turns")
        state.num_turns = int(turns) if isinstance(turns, int | float) else 1
        cost = self.field(data, "total_cost")
        state.total_cost = float(cost) if isinstance(cost, int | float) else 0.0
        usage: dict[str, Any] = {}
        for key in ("prompt_tokens", "completion_tokens"):
            value = self.field(data, key)
            if isinstance(value, int | float):
                usage[key] = int(value)
        state.usage.add(usage)
        structured = self.field(data, "structured_output")
        if request.json_schema is not None and not state.is_error:
            validator = Draft202012Validator(request.json_schema)
            text = orjson.dumps(structured).decode() if structured is not MISSING else state.result
            value, problem = check_json_answer(text, validator)
            if problem is not None:
                state.is_error, state.error_code = True, "invalid_output"
                state.result = f"{problem}: {state.result}"
            else:
                state.structured = value
        state.turns.append({"type": "assistant", "turn": state.num_turns, "content": state.result, "raw": data})
        return session_id if isinstance(session_id, str) and session_id else None
