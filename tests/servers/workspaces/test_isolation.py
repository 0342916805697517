"""A workspace run never reaches the hub's secrets or data, and leaves no process behind, in any mode.

The hub's data dir here is a real one (master key, storage's bucket keys and presign secret, a
stored object), written by the hub's and storage's own code, in a directory every user could
traverse: the pytest temp dir (0700) would hide it from a separate user by accident.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

from servers.storage.config import BucketConfig, resolve_bucket_keys, server_secret
from servers.workspaces.config import ShellConfig
from servers.workspaces.doctor import shell_isolation
from servers.workspaces.shell import Shell
from tests.servers.workspaces.conftest import workspaces_env
from tests.servers.workspaces.fakes import ScriptedOpenAI, Turn, tool_results
from tests.servers.workspaces.procs import running, wait_gone
from tests.servers.workspaces.test_shell import broken_bwrap

pytestmark = pytest.mark.anyio

SECRETS = ("master.key", "storage/bucket-keys.json", "storage/presign.secret", "storage/objects/private.bin")


@pytest.fixture
def hub_data() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="tm-hub-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    fd = os.open(data / "master.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # as aggregator.auth does
    os.write(fd, b"tm-master-key\n")
    os.close(fd)
    storage = data / "storage"
    storage.mkdir()
    resolve_bucket_keys([BucketConfig(name="private-docs")], storage)
    server_secret(storage)
    (storage / "objects").mkdir()
    (storage / "objects" / "private.bin").write_bytes(b"private object")  # an object at the default 0644
    try:
        yield data
    finally:
        shutil.rmtree(base)


def snoop(data: Path) -> str:
    """What an agent after the hub's secrets would run: read each, list the data dir, leave a process."""
    reads = "; ".join(
        f'cat "{data / name}" >/dev/null 2>&1 && echo "READ {name}" || echo "DENIED {name}"' for name in SECRETS
    )
    listing = f'ls -A "{data}" 2>/dev/null | sed "s/^/ENTRY /"'
    return f"{reads}; {listing}; setsid sleep 3144.5 >/dev/null 2>&1 & echo PID=$!"


def leaked(output: str) -> list[str]:
    """Lines showing a secret was read or the data dir's real contents were listed."""
    lines = output.splitlines()
    return [line for line in lines if line.startswith("READ ") or line in ("ENTRY master.key", "ENTRY storage")]


def snooping_policy(data: Path) -> Any:
    def policy(body: dict[str, Any]) -> Turn:
        results = tool_results(body)
        if not results:
            return Turn(calls=[("run_shell", {"command": snoop(data)})])
        return Turn(content="done")

    return policy


def left_pid(output: str) -> int:
    match = re.search(r"PID=(\d+)", output)
    assert match, output
    return int(match.group(1))


def gone(pid: int) -> bool:
    try:
        return not running(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


async def run_snooping_agent(data: Path, fake: ScriptedOpenAI, shell: dict[str, Any]) -> tuple[dict[str, Any], str]:
    fake.policy = snooping_policy(data)
    async with workspaces_env(data, fake, shell=shell) as env:
        with anyio.fail_after(60):
            result = await env.ok("run", {"prompt": "find the keys", "workspace": "snoop", "output": "json-verbose"})
        status = await env.ok("status", {})
    shell_result = next(t for t in result["turns"] if t["type"] == "tool_result")
    return status, shell_result["content"]


async def test_sandbox_none_runs_the_agent_as_a_user_that_cannot_read_secrets_and_leaves_nothing_running(
    hub_data: Path, fake: ScriptedOpenAI
) -> None:
    status, output = await run_snooping_agent(hub_data, fake, {"sandbox": "none"})
    assert status["isolation"]["shell"] == "separate-user"
    assert [f"DENIED {name}" in output for name in SECRETS] == [True] * len(SECRETS), output
    assert leaked(output) == [] and "ENTRY" not in output  # not even the way down to the workspaces
    assert gone(left_pid(output))  # the setsid child died with the command, not later


async def test_auto_without_a_working_bubblewrap_turns_the_shell_off_instead_of_running_unconfined(
    hub_data: Path, fake: ScriptedOpenAI, tmp_path: Path
) -> None:
    status, output = await run_snooping_agent(hub_data, fake, {"sandbox": "auto", "bwrap_path": broken_bwrap(tmp_path)})
    assert status["isolation"]["shell"] == "unavailable" and "sandbox: none" in status["isolation"]["reason"]
    assert "run_shell" not in {t["function"]["name"] for t in fake.chat_requests[0].body["tools"]}
    assert output.startswith("error: the shell is off") and leaked(output) == [] and "PID=" not in output


async def test_bubblewrap_hides_the_data_dir_and_its_pid_namespace_takes_setsid_children_along(
    hub_data: Path, fake: ScriptedOpenAI
) -> None:
    if (await Shell(ShellConfig(sandbox="bubblewrap")).isolation()).mode != "bubblewrap":
        pytest.skip("bubblewrap does not work on this host (the other modes are tested above)")
    status, output = await run_snooping_agent(hub_data, fake, {"sandbox": "bubblewrap"})
    assert status["isolation"]["shell"] == "bubblewrap"
    assert [f"DENIED {name}" in output for name in SECRETS] == [True] * len(SECRETS), output
    assert leaked(output) == [] and "PID=" in output
    # The printed pid is the namespace's own, so the sleep is looked up on the host by its marker.
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if "3144.5" in (p.info["cmdline"] or []) and running(p)]
    assert leftovers == []


async def test_commands_running_at_once_get_separate_users_and_one_ending_spares_the_other(tmp_path: Path) -> None:
    shell = Shell(ShellConfig(sandbox="none"))
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    ready = anyio.Event()

    def output(piece: bytes) -> None:
        if b"ready" in piece:
            ready.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: shell.run("sleep 3145.5 & echo ready; wait", str(first), timeout=30, on_output=output)
            )
            await ready.wait()
            short = await shell.run("id -u", str(second))
            sleepers = [p for p in psutil.process_iter(["cmdline"]) if "3145.5" in (p.info["cmdline"] or [])]
            assert [running(p) for p in sleepers] == [True]  # the other command's child survived this one's end
            long_uid = sleepers[0].uids().real
            tg.cancel_scope.cancel()
        await wait_gone(sleepers)
    short_uid = int(short.stdout.text().split()[0])
    assert short_uid != long_uid and 0 not in (short_uid, long_uid)


async def test_doctor_reports_a_shell_that_is_off_and_why(tmp_path: Path) -> None:
    report = shell_isolation({"shell": {"sandbox": "auto", "bwrap_path": broken_bwrap(tmp_path)}}, tmp_path / "data")
    assert report["ok"] is False and report["shell"] == "unavailable" and "bubblewrap" in report["reason"]
    chosen = shell_isolation({"shell": {"sandbox": "none"}}, tmp_path / "data")
    assert chosen["ok"] is True and chosen["shell"] == "separate-user"
