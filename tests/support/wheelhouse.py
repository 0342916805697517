"""Build a wheelhouse offline: toolmux's wheel plus its runtime dependencies repacked from this venv.

Tests cannot reach a package index, so the dependencies' wheels are rebuilt from the files their
installed distributions list in RECORD (the same bytes pip unpacked), with a fresh RECORD. On a
connected host `scripts/wheelhouse` downloads the real wheels instead.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

SOURCES = ("pyproject.toml", "README.md", "aggregator", "servers", "clients", "schemas")


def clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH: a checkout on the path would look like an installed toolmux."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_FIND_LINKS", "PIP_INDEX_URL")}


def build_toolmux_wheel(project: Path, out: Path) -> Path:
    """toolmux's wheel, built from a copy of the sources (the build leaves egg-info and build/ behind)."""
    with tempfile.TemporaryDirectory(prefix="toolmux-src-") as scratch:
        source = Path(scratch)
        for name in SOURCES:
            if (project / name).is_dir():
                shutil.copytree(project / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(project / name, source / name)
        pip = [sys.executable, "-m", "pip", "wheel", "-q", str(source), "--no-deps", "--no-build-isolation"]
        subprocess.run(
            [*pip, "-w", str(out)],
            check=True,
            capture_output=True,
            env=clean_env(),
        )
    return next(out.glob("toolmux-*.whl"))


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """Requires-Dist of a wheel that apply with no extras on this interpreter."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    lines = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    found = [Requirement(line) for line in lines]
    return [r for r in found if r.marker is None or r.marker.evaluate({"extra": ""})]


def closure(requirements: list[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions the requirements pull in, transitively, with the extras they ask for."""
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        extras = {"", *requirement.extras}
        if all((key, extra) in done for extra in extras):
            continue
        done.update((key, extra) for extra in extras)
        dist = seen.setdefault(key, metadata.distribution(requirement.name))
        for line in dist.requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(dep)
    return list(seen.values())


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(dist: metadata.Distribution, out: Path) -> Path:
    """A wheel of an installed distribution, from the files its RECORD lists inside site-packages."""
    site = Path(str(dist.locate_file("")))
    info = next(p for p in (dist.files or []) if p.parts[0].endswith(".dist-info"))
    info_dir = info.parts[0]
    wheel_meta = (site / info_dir / "WHEEL").read_text()
    tag = next(line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:"))
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    target = out / f"{name}-{dist.version}-{tag}.whl"
    records: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in dist.files or []:
            posix = path.as_posix()
            # Scripts live outside site-packages (../../bin): pip writes them again from entry_points.txt.
            if posix.startswith("..") or "__pycache__" in path.parts or posix == f"{info_dir}/RECORD":
                continue
            if posix in (f"{info_dir}/INSTALLER", f"{info_dir}/REQUESTED", f"{info_dir}/direct_url.json"):
                continue
            source = site / path
            if not source.is_file():
                continue
            data = source.read_bytes()
            archive.writestr(posix, data)
            records.append((posix, _record_hash(data), str(len(data))))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([*records, (f"{info_dir}/RECORD", "", "")])
        archive.writestr(f"{info_dir}/RECORD", buffer.getvalue())
    return target


def offline_wheelhouse(project: Path, out: Path) -> Path:
    """toolmux's wheel and every runtime dependency's, in `out`; returns toolmux's wheel."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_toolmux_wheel(project, out)
    for dist in closure(wheel_requirements(wheel)):
        repack(dist, out)
    return wheel
