"""The `state:` section, and an embedded default that never loads the Redis or PostgreSQL clients."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from aggregator.config import HubConfig
from aggregator.state import StateConfig


def test_state_defaults_to_embedded_and_accepts_the_shorthand() -> None:
    assert HubConfig.model_validate({}).state.embedded
    assert HubConfig.model_validate({"state": "embedded"}).state.embedded


def test_shared_stores_take_urls_a_prefix_and_a_schema() -> None:
    config = HubConfig.model_validate(
        {"state": {"redis": "redis://r:6379/1", "postgres": "postgresql://pg/toolmux", "prefix": "p:", "schema": "tm"}}
    ).state
    assert not config.embedded and config.prefix == "p:" and config.schema_name == "tm"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"redis": "http://r"}, "redis"),
        ({"postgres": "mysql://db"}, "postgres"),
        ({"schema": "Bad-Name"}, "schema"),
        ({"rediss": "redis://r"}, "rediss"),
        ("shared", None),
    ],
)
def test_bad_state_settings_are_refused_naming_the_field(raw: object, field: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        StateConfig.model_validate(raw)
    if field is not None:
        assert caught.value.errors()[0]["loc"][-1] == field


def test_the_embedded_state_never_imports_redis_or_psycopg(tmp_path: object) -> None:
    code = (
        "import sys, anyio, pathlib, tempfile\n"
        "from aggregator.state import open_state\n"
        "async def main():\n"
        "    state = await open_state(data_dir=pathlib.Path(tempfile.mkdtemp()))\n"
        "    assert await state.limiter.acquire('k', rpm=1, tpm=None) is None\n"
        "    await state.aclose()\n"
        "anyio.run(main)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'psycopg', 'psycopg_pool'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
