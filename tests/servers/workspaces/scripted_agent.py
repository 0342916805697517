#!/usr/bin/env python3
"""A small scripted agent CLI for the external-agent tests, shaped like a coding agent in print mode.

    scripted_agent.py -p PROMPT --output-format json [--resume SESSION] [--model M] [--json-schema S]

It keeps its own sessions under .scripted-agent/ in its working directory (the workspace) and
prints one JSON result object, like `claude -p --output-format json`. What it does depends on
the prompt: "write ..." writes agent-output.txt; "recall" lists the session's earlier prompts;
"sleep" starts a child that sleeps until killed; "crash" exits 2 with no JSON; "refuse" reports
is_error; "plain" prints text only; "env" reports its environment; "json" answers {"answer": 42}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-p", dest="prompt", required=True)
    parser.add_argument("--output-format", default="text")
    parser.add_argument("--resume")
    parser.add_argument("--model")
    parser.add_argument("--json-schema")
    args = parser.parse_args()

    sessions = Path(".scripted-agent")
    sessions.mkdir(exist_ok=True)
    session = args.resume or uuid.uuid4().hex
    history_file = sessions / f"{session}.txt"
    earlier = history_file.read_text().splitlines() if history_file.exists() else []
    with history_file.open("a") as history:
        history.write(args.prompt + "\n")

    prompt = args.prompt
    result: object = f"done: {prompt}"
    is_error = False
    structured = None
    if prompt.startswith("write"):
        Path("agent-output.txt").write_text(prompt)
        result = "wrote agent-output.txt"
    elif prompt == "recall":
        result = "earlier: " + " | ".join(earlier)
    elif prompt == "sleep":
        child = subprocess.Popen(["sleep", "3144.5"])
        print("ready", flush=True)
        child.wait()
    elif prompt == "crash":
        print("model exploded", file=sys.stderr)
        return 2
    elif prompt == "refuse":
        is_error = True
        result = "I cannot do that"
    elif prompt == "plain":
        print("just some text")
        return 0
    elif prompt == "env":
        result = json.dumps(sorted(os.environ))
    elif prompt == "json":
        structured = {"answer": 42}
        result = json.dumps(structured)

    print("thinking...", flush=True)  # noise before the JSON, as real CLIs print
    output = {
        "type": "result",
        "subtype": "success" if not is_error else "error",
        "is_error": is_error,
        "result": result,
        "session_id": session,
        "num_turns": 2,
        "duration_ms": 5,
        "total_cost_usd": 0.0125,
        "usage": {"input_tokens": 100, "output_tokens": 20},
        "model": args.model,
    }
    if structured is not None and args.json_schema:
        output["structured_output"] = structured
    print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
