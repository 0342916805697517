"""The wheel installs offline into a fresh venv and runs as a plain user from any directory, no checkout."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.support.wheelhouse import clean_env, offline_wheelhouse
from tests.test_scripts import readiness

PROJECT_ROOT = Path(__file__).resolve().parents[1]
USER = "toolmux-test"
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def plain_user() -> pwd.struct_passwd:
    """A user without root rights: this one when not root, else a system user made for the test."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        return pwd.getpwnam(USER)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory other users can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="toolmux-wheel-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def run_as(user: pwd.struct_passwd, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    as_other = os.geteuid() == 0
    done = await anyio.run_process(
        argv,
        env=env,
        cwd=cwd,
        check=False,
        user=user.pw_uid if as_other else None,
        group=user.pw_gid if as_other else None,
        extra_groups=[] if as_other else None,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_the_wheel_installs_offline_and_serves_as_a_plain_user_from_an_empty_directory(
    shared_tmp: Path,
) -> None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} (Python 3.11+ with venv, runnable by any user) is needed for this test")
    wheelhouse = shared_tmp / "wheelhouse"
    await anyio.to_thread.run_sync(offline_wheelhouse, PROJECT_ROOT, wheelhouse)
    venv = shared_tmp / "venv"
    await anyio.run_process([SYSTEM_PYTHON, "-m", "venv", str(venv)], env=clean_env())
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheelhouse), "toolmux"]
    await anyio.run_process(pip, env=clean_env())

    user = plain_user()
    home = shared_tmp / "home"
    empty = home / "empty"
    empty.mkdir(parents=True)
    for path in (home, empty):
        os.chown(path, user.pw_uid, user.pw_gid)
    env = {"HOME": str(home), "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    toolmux = str(venv / "bin" / "toolmux")

    serve_env = {**env}
    kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if os.geteuid() == 0 else {}
    async with await anyio.open_process(
        [toolmux, "serve", "--port", "0"], env=serve_env, cwd=empty, stdin=subprocess.DEVNULL, **kwargs
    ) as process:
        assert process.stderr is not None
        log = b""
        with anyio.fail_after(60):
            async for chunk in process.stderr:
                log += chunk
                if b"toolmux ready in" in log:
                    break
        url = next(w for w in log.decode().split() if w.endswith("/mcp/"))
        with anyio.fail_after(30):
            await readiness(url.removesuffix("/mcp/"))

        listed = await run_as(user, [toolmux, "tools", "--url", url], env, empty)
        args = ["--arg", "bucket=default", "--arg", "key=hello.txt"]
        put = await run_as(
            user, [toolmux, "call", "storage-put_object", "--url", url, *args, "--arg", "text=hello wheel"], env, empty
        )
        got = await run_as(user, [toolmux, "call", "storage-get_object", "--url", url, *args], env, empty)
        process.terminate()
        with anyio.fail_after(30):
            code = await process.wait()

    assert listed[0] == 0 and "storage-put_object" in listed[1], listed
    assert put[0] == 0, put
    assert got[0] == 0 and "hello wheel" in got[1], got
    assert code == 0
    assert (home / ".local" / "share" / "toolmux" / "master.key").exists()
    assert list(empty.iterdir()) == []
