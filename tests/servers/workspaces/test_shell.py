"""The agent's shell: isolation detected by trying it (and reported truthfully), limits, cleanup."""

from __future__ import annotations

import stat
from pathlib import Path

import anyio
import psutil
import pytest

from servers.kit import ToolError
from servers.workspaces.config import ShellConfig
from servers.workspaces.shell import Shell
from tests.servers.workspaces.conftest import Env, workspaces_env
from tests.servers.workspaces.fakes import ScriptedOpenAI
from tests.servers.workspaces.procs import group_members, running, wait_gone

pytestmark = pytest.mark.anyio

CONTAINER_BWRAP_ERROR = (
    "bwrap: No permissions to creating new namespace, likely because the kernel does not allow "
    "non-privileged user namespaces"
)


def broken_bwrap(tmp_path: Path) -> str:
    """A bwrap that fails the way it does in an unprivileged container."""
    script = tmp_path / "bwrap-in-a-container"
    script.write_text(f"#!/bin/sh\necho '{CONTAINER_BWRAP_ERROR}' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def workspace(tmp_path: Path) -> str:
    path = tmp_path / "ws"
    path.mkdir(exist_ok=True)
    return str(path)


async def escape_attempt(shell: Shell, tmp_path: Path) -> tuple[bool, bool]:
    """(could read a file outside the workspace, had a network interface besides lo)."""
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    result = await shell.run(f"cat {secret}; echo ---; cat /proc/net/dev", workspace(tmp_path))
    output, _, net_dev = result.stdout.text().partition("---")
    interfaces = [line.split(":")[0].strip() for line in net_dev.splitlines() if ":" in line and "|" not in line]
    return "TOP-SECRET-CONTENT" in output, any(name != "lo" for name in interfaces)


async def test_status_reports_the_isolation_that_is_really_active(env: Env, tmp_path: Path) -> None:
    isolation = (await env.ok("status", {}))["isolation"]
    if isolation["shell"] == "bubblewrap":
        read_outside, has_network = await escape_attempt(env.service.shell, tmp_path)
        assert not read_outside and not has_network and isolation["network"] is False
    else:
        # No working sandbox under `auto`: the shell is off, and status says so and why.
        assert isolation["shell"] == "unavailable" and "bubblewrap" in isolation["reason"]
        with pytest.raises(ToolError):
            await escape_attempt(env.service.shell, tmp_path)
    assert isolation["limits"]["cpu_seconds"] == 120


async def test_a_bwrap_that_cannot_create_namespaces_turns_the_shell_off_and_says_why(tmp_path: Path) -> None:
    shell = Shell(ShellConfig(bwrap_path=broken_bwrap(tmp_path)))
    isolation = await shell.isolation()
    assert isolation.mode == "unavailable" and CONTAINER_BWRAP_ERROR in isolation.reason
    assert "sandbox: none" in isolation.reason  # names the explicit way out
    with pytest.raises(ToolError) as refused:
        await escape_attempt(shell, tmp_path)
    assert refused.value.code == "unavailable"


async def test_required_bubblewrap_that_does_not_work_refuses_to_run_commands(
    tmp_path: Path, fake: ScriptedOpenAI
) -> None:
    async with workspaces_env(
        tmp_path, fake, shell={"sandbox": "bubblewrap", "bwrap_path": broken_bwrap(tmp_path)}
    ) as env:
        status = await env.ok("status", {})
        assert status["isolation"]["shell"] == "unavailable" and "required" in status["isolation"]["reason"]
        with pytest.raises(ToolError) as refused:
            await env.service.shell.run("true", workspace(tmp_path))
    assert refused.value.code == "unavailable"


async def test_sandbox_none_runs_commands_as_a_separate_unprivileged_user(tmp_path: Path) -> None:
    shell = Shell(ShellConfig(sandbox="none"))
    isolation = await shell.isolation()
    assert isolation.mode == "separate-user" and "sandbox: none" in isolation.reason and isolation.network
    result = await shell.run("id -u; id -G", workspace(tmp_path))
    uid, groups = result.stdout.text().splitlines()
    assert int(uid) >= 1000 and groups.split() == [uid]  # no root, no supplementary groups


@pytest.mark.parametrize("sandbox", ["auto", "none"])
async def test_commands_get_a_scrubbed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: str
) -> None:
    monkeypatch.setenv("TOOLMUX_TEST_SECRET", "hunter2")
    ws = workspace(tmp_path)
    result = await Shell(ShellConfig(sandbox=sandbox)).run("env; pwd", ws)  # type: ignore[arg-type]
    output = result.stdout.text()
    assert "hunter2" not in output and "TOOLMUX_TEST_SECRET" not in output
    assert f"HOME={ws}" in output and output.strip().endswith(ws) and result.exit_code == 0


async def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        result = await Shell(ShellConfig()).run("echo started; sleep 30", workspace(tmp_path), timeout=0.3)
    assert result.timed_out and result.duration_s < 5 and "started" in result.stdout.text()


async def test_long_output_is_cut_in_the_middle(tmp_path: Path) -> None:
    result = await Shell(ShellConfig(output_cap=1000)).run("seq 1 100000", workspace(tmp_path))
    text = result.stdout.text()
    assert text.startswith("1\n2\n3\n") and text.rstrip().endswith("100000") and "bytes omitted" in text
    assert result.stdout.total == len("\n".join(str(i) for i in range(1, 100001))) + 1
    assert len(text) < 1200


async def test_file_size_limit_stops_runaway_writes(tmp_path: Path) -> None:
    shell = Shell(ShellConfig(file_size=64 * 1024))
    result = await shell.run("head -c 1000000 /dev/zero > big.bin; echo exit=$?", workspace(tmp_path))
    assert "exit=0" not in result.stdout.text()
    assert (tmp_path / "ws" / "big.bin").stat().st_size <= 64 * 1024


async def test_background_processes_do_not_outlive_their_command(tmp_path: Path) -> None:
    started: list[int] = []

    async def on_start(pid: int) -> None:
        started.append(pid)

    marker = "3141.5"
    with anyio.fail_after(10):
        result = await Shell(ShellConfig()).run(
            f"sleep {marker} & echo spawned", workspace(tmp_path), on_start=on_start
        )
    assert "spawned" in result.stdout.text() and result.exit_code == 0
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or []) and running(p)]
    assert leftovers == []


async def test_cancelling_a_command_kills_its_whole_process_group(tmp_path: Path) -> None:
    shell = Shell(ShellConfig())
    ready = anyio.Event()
    leader: list[int] = []

    async def on_start(pid: int) -> None:
        leader.append(pid)

    def output(piece: bytes) -> None:
        if b"ready" in piece:
            ready.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: shell.run(
                    "sleep 3142.5 & sleep 3142.6 & echo ready; wait",
                    workspace(tmp_path),
                    on_start=on_start,
                    on_output=output,
                )
            )
            await ready.wait()
            members = group_members(leader[0])
            assert len(members) >= 3  # the shell (or bwrap and its init) and both sleeps
            tg.cancel_scope.cancel()
        await wait_gone(members)
    assert not any(running(p) for p in members)
    assert (tmp_path / "ws").is_dir()
