"""One hub for the whole fuzz module: hypothesis drives many requests against it, and each test
ends by checking that it still answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.aggregator.hubkit import RunningHub, running_hub

# Bounded so the suite adds well under a minute to CI: few examples per face, no per-example
# deadline (this machine's timing varies), the same examples every run (no example database).
settings.register_profile(
    "toolmux-fuzz",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("toolmux-fuzz")

# The light built-ins, each reached through its own face. Browser and speech are not started: their
# routes are fuzzed where they refuse input before reaching an engine (or find no tool: 404).
BUILTINS = ["storage", "models", "mail", "forecast", "web", "workspaces", "demo"]
# Facade requests get a short bound, so a hang shows as a failure rather than a stuck suite.
FACADE_TIMEOUT = 10.0
FACADES = {
    kind: {"timeout": FACADE_TIMEOUT, "max_body_bytes": 1024 * 1024}
    for kind in (
        "llm",
        "audio_transcription",
        "audio_speech",
        "audio_voices",
        "mail",
        "mail_send",
        "workspaces_files",
        "workspaces_runs",
        "workspaces_run_result",
        "workspaces_run_cancel",
        "browser",
        "forecast",
        "forecast_models",
        "web",
    )
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningHub]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    async with running_hub(tmp_path, {}, builtins=BUILTINS, facades=FACADES) as running:
        yield running
