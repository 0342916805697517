"""The shell blocks of docs/getting-started.md marked `<!-- doctest: ... -->` work as written.

`<!-- doctest: file NAME -->` before a fenced block writes it to NAME; `<!-- doctest: run -->`
runs the block with bash (-e: every command must succeed) against a real hub started here, with
the guide's address (127.0.0.1:4000) replaced by the hub's free port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml

from tests.test_scripts import readiness

PROJECT_ROOT = Path(__file__).resolve().parents[1]
GUIDE = PROJECT_ROOT / "docs" / "getting-started.md"
BLOCK = re.compile(r"<!-- doctest: (run|file (\S+)) -->\n```\w*\n(.*?)\n```", re.S)

pytestmark = pytest.mark.anyio


def marked_blocks() -> list[tuple[str, str | None, str]]:
    """(kind, file name, text) of every marked block, in order."""
    return [(m.group(1).split()[0], m.group(2), m.group(3)) for m in BLOCK.finditer(GUIDE.read_text())]


def test_the_guide_marks_blocks_to_run() -> None:
    kinds = [kind for kind, _, _ in marked_blocks()]
    assert kinds.count("run") >= 2 and "file" in kinds


async def test_the_getting_started_blocks_run_against_a_real_hub(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLMUX_")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({"builtins": ["storage"]}))
    command = [sys.executable, "-m", "aggregator", "serve", "--port", "0", "--config", str(config)]
    async with await anyio.open_process(command, env=env, cwd=work, stdin=subprocess.DEVNULL) as hub:
        assert hub.stderr is not None
        log = b""
        with anyio.fail_after(60):
            async for chunk in hub.stderr:
                log += chunk
                if b"toolmux ready in" in log:
                    break
        base = re.search(rb"MCP at (http://127\.0\.0\.1:\d+)/mcp/", log)
        assert base, log
        url = base.group(1).decode()
        with anyio.fail_after(30):
            await readiness(url)
        host_port = url.removeprefix("http://")
        # `toolmux tools` and `call` default to port 4000: point them at this hub the documented way.
        env["TOOLMUX_URL"] = f"{url}/mcp/"
        outputs = []
        for kind, name, text in marked_blocks():
            if kind == "file":
                assert name is not None
                (work / name).write_text(text + "\n")
                continue
            script = text.replace("127.0.0.1:4000", host_port)
            done = await anyio.run_process(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=work, check=False)
            outputs.append(done.stdout.decode())
            report = f"{script}\n--- stdout\n{done.stdout.decode()}\n--- stderr\n{done.stderr.decode()}"
            assert done.returncode == 0, report
        hub.terminate()
    assert "storage-put_object" in outputs[0]  # the catalog
    assert '"text": "hi"' in outputs[0]  # the object came back
    assert '"status"' in outputs[0]  # /health answered with the key
