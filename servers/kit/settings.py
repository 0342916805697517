"""How a domain server is configured, whether the hub runs it or a person runs it alone."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from servers.kit.context import HubCaller

# Environment the hub sets for a built-in server it spawns as a child process.
ENV_CONFIG = "TOOLMUX_SERVER_CONFIG"  # JSON of the server's own config section
ENV_DATA_DIR = "TOOLMUX_DATA_DIR"
ENV_PUBLIC_URL = "TOOLMUX_PUBLIC_URL"
ENV_HUB_URL = "TOOLMUX_HUB_URL"
ENV_HUB_KEY = "TOOLMUX_HUB_KEY"

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class ServerConfigError(ValueError):
    """A server's config section is invalid; the message names the key path."""


def _data_dir() -> Path:
    """$TOOLMUX_DATA_DIR (the hub always sets it for its children), else the one rule the CLI uses."""
    from aggregator import datadir

    return datadir.resolve()


@dataclass
class ServerSettings:
    """Everything a domain's `create()` needs."""

    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    data_dir: Path = field(default_factory=lambda: Path(".data"))
    public_url: str | None = None
    hub: HubCaller | None = None
    state: Any = None  # the hub's shared `aggregator.state.State` (in-process servers only); None: embedded
    # In-process servers only (None otherwise): the limits a caller's key carries (model allow-list,
    # rpm/tpm, budget), by key name; and the hub's metrics, for what only the domain knows
    # (servers/models/callers.py and observer.py define what these must offer).
    key_limits: Callable[[str], Any] | None = None
    observer: Any = None

    def parse(self, model: type[ConfigT]) -> ConfigT:
        """Validate the config section against `model`, naming the key path on failure."""
        try:
            return model.model_validate(dict(self.config))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                path = ".".join(str(p) for p in err["loc"]) or "(root)"
                problems.append(f"servers.{self.name}.config.{path}: {err['msg']}")
            raise ServerConfigError("; ".join(problems)) from None

    @property
    def server_dir(self) -> Path:
        """This server's own directory under the data dir, created on first use."""
        path = self.data_dir / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @classmethod
    def from_environment(cls, name: str, config: Mapping[str, Any] | None = None) -> ServerSettings:
        """Settings of a child process spawned by the hub (or a standalone run)."""
        if config is None:
            raw = os.environ.get(ENV_CONFIG)
            config = json.loads(raw) if raw else {}
        hub: HubCaller | None = None
        hub_url = os.environ.get(ENV_HUB_URL)
        if hub_url:
            from clients.hub import HttpHubCaller

            hub = HttpHubCaller(hub_url, os.environ.get(ENV_HUB_KEY))
        return cls(
            name=name,
            config=config,
            data_dir=_data_dir(),
            public_url=os.environ.get(ENV_PUBLIC_URL),
            hub=hub,
        )
