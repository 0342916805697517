"""A hub started with `state:` shared: its models domain and another replica share one rpm limit,
`/health` shows the stores and the fleet, and the hub's usage rows reach PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from aggregator.state import StateConfig, open_state
from servers.kit import ToolError
from servers.models.config import ModelsConfig
from servers.models.service import ModelsService
from tests.aggregator.hubkit import MASTER_KEY, running_hub
from tests.servers.models.fakes import fake_backend

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "Say hello"}]


async def test_a_hub_on_shared_state_and_another_replica_enforce_one_rpm_limit(
    shared_state_config: StateConfig, tmp_path: Path
) -> None:
    state_section = shared_state_config.model_dump(by_alias=True, exclude_none=True)
    async with fake_backend("openai") as fake:
        models = {
            "backends": {"a": {"type": "openai", "base_url": fake.url}},
            "aliases": {"main": {"deployments": [{"backend": "a", "model": "fake-model", "rpm": 3}]}},
            "health": {"enabled": False},
        }
        other_state = await open_state(shared_state_config, data_dir=tmp_path / "other", replica_id="other")
        other = ModelsService(ModelsConfig.model_validate(models), data_dir=tmp_path / "other", state=other_state)
        try:
            async with running_hub(
                tmp_path, {"models": {"config": models}}, builtins=["models"], state=state_section
            ) as running:
                async with running.client() as hub:
                    await hub.call("models-chat", model="main", messages=USER)
                    await other.chat({"model": "main", "messages": USER})
                    await hub.call("models-chat", model="main", messages=USER)
                    with pytest.raises(ToolError) as through_hub:
                        await hub.call("models-chat", model="main", messages=USER)
                with pytest.raises(ToolError) as on_other:
                    await other.chat({"model": "main", "messages": USER})
                await other_state.heartbeat("test", load=0)
                async with httpx2.AsyncClient() as http:
                    health = (
                        await http.get(f"{running.url}/health", headers={"Authorization": f"Bearer {MASTER_KEY}"})
                    ).json()
                hub_replica = running.hub.state.replica_id  # type: ignore[union-attr]
            # The hub has stopped: its last usage rows were flushed before its state closed.
            by_replica = {r["replica"]: r for r in await other_state.ledger.query(group_by=["replica"])}
        finally:
            await other.aclose()
            await other_state.aclose()
    assert through_hub.value.code == on_other.value.code == "rate_limited"
    assert len(fake.chat_requests) == 3
    assert health["state"]["mode"] == "shared"
    assert health["state"]["stores"] == {"postgres": {"healthy": True}, "redis": {"healthy": True}}
    assert {r["id"] for r in health["state"]["fleet"]} == {"other", hub_replica}
    assert by_replica[hub_replica]["requests"] == 3 and by_replica[hub_replica]["errors"] == 1
