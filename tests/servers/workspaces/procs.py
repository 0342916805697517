"""Finding a command's processes and proving they are gone (by pid, waiting on pidfds, no polling)."""

from __future__ import annotations

import os

import anyio
import psutil


def group_members(pgid: int) -> list[psutil.Process]:
    """Every process in the process group `pgid` (a command's leader and what it forked)."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                members.append(psutil.Process(pid))  # fresh: its start time pins this very process
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (a killed orphan may wait for a reaper that is not ours)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_gone(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    """Return once every process has exited; fail (TimeoutError) if one lives on."""
    with anyio.fail_after(timeout):
        for process in processes:
            try:
                fd = os.pidfd_open(process.pid)
            except ProcessLookupError:
                continue
            try:
                if running(process):  # same process (psutil checks the start time), still there
                    await anyio.wait_readable(fd)  # a pidfd turns readable when its process exits
            finally:
                os.close(fd)
    assert not [p.pid for p in processes if running(p)]
