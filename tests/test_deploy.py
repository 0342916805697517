"""The container and service files pass their linters (no Docker daemon or systemd boot here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """An executable from this venv (pip-installed linters) or the system."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed (scripts/setup test installs it)"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [tool("hadolint"), "--no-color", str(PROJECT_ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_runs_as_a_non_root_user_with_a_readiness_healthcheck_and_a_data_volume() -> None:
    lines = (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    text = "\n".join(final)
    assert "HEALTHCHECK" in text and "/health/readiness" in text
    assert 'VOLUME ["/data"]' in text and "TOOLMUX_DATA_DIR=/data" in text


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (PROJECT_ROOT / "deploy" / "toolmux.service").read_text()
    # verify checks that ExecStart exists: point it at this installation's toolmux.
    installed = tool("toolmux")
    (tmp_path / "toolmux.service").write_text(unit.replace("/opt/toolmux/bin/toolmux", installed))
    done = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", str(tmp_path / "toolmux.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    assert "ProtectSystem=strict" in unit and "NoNewPrivileges=yes" in unit


def test_the_compose_file_offers_redis_postgres_and_searxng_as_optional_profiles() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert "profiles" not in services["toolmux"]
    assert {name for name, service in services.items() if service.get("profiles")} == {"redis", "postgres", "searxng"}
    assert "toolmux-data:/data" in services["toolmux"]["volumes"]
