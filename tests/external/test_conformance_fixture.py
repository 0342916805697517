"""The official MCP conformance suite passes in full against the project's everything fixture.

The fixture runs as a real child process over streamable HTTP on a free loopback port; the suite
is the pinned npm package run by Node 22 (both installed by scripts/setup).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.external.conformance import (
    ConformanceRunError,
    ConformanceUnavailable,
    parse_totals,
    run_suite,
)
from tests.fixtures.everything import MCP_PATH, EverythingServer
from tests.fixtures.everything.process import http_fixture
from tests.support.asgi import serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.external]

# What @modelcontextprotocol/conformance 0.2.0-alpha.11 runs per revision; fewer means scenarios went missing.
EXPECTED_CHECKS = {"2025-11-25": 84, "2026-07-28": 151}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def fixture_url() -> AsyncIterator[str]:
    async with http_fixture() as url:
        yield url


@pytest.mark.parametrize("spec_version", sorted(EXPECTED_CHECKS))
async def test_the_fixture_passes_every_check_of_the_revision(fixture_url: str, spec_version: str) -> None:
    report = await run_suite(fixture_url, spec_version)

    assert report.ok, report.details()
    assert (report.passed, report.failed) == (EXPECTED_CHECKS[spec_version], 0), report.details()
    assert report.warnings == [], report.details()


async def test_the_runner_names_the_checks_a_server_fails() -> None:
    broken = EverythingServer()
    broken.remove_tool("test_simple_text")
    async with serve_asgi(broken.http_app()) as base_url:
        report = await run_suite(base_url + MCP_PATH, "2025-11-25", scenario="tools-call-simple-text")

    assert not report.ok
    assert report.failed >= 1
    assert {check.scenario for check in report.failures} == {"tools-call-simple-text"}
    assert "tools-call-simple-text" in report.details()


async def test_a_missing_suite_is_reported_with_the_way_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ConformanceUnavailable, match=r"not installed at .*node.*scripts/setup"):
        await run_suite("http://127.0.0.1:9/mcp", "2025-11-25", node=tmp_path / "node")


def test_totals_come_from_the_suites_last_total_line_even_when_coloured() -> None:
    output = "✓ ping: 2 passed, 0 failed\nTotal: 84 passed, 0 failed\n\x1b[1mTotal: 83 passed, 1 failed\x1b[0m\n"

    assert parse_totals(output) == (83, 1)


def test_a_single_scenario_run_reports_its_own_totals() -> None:
    output = "Test Results:\nPassed: 13/14, 1 failed, 0 warnings\n\n=== Failed Checks ===\n"

    assert parse_totals(output) == (13, 1)


def test_output_without_totals_is_an_error_not_a_pass() -> None:
    with pytest.raises(ConformanceRunError, match="no totals line"):
        parse_totals("Error: connect ECONNREFUSED 127.0.0.1:9\n")
