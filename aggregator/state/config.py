"""The `state:` section: where a hub keeps what several replicas must share.

    state: embedded                 # the default: in-process + SQLite + files, needs nothing else
    state:
      redis: redis://127.0.0.1:6379/0             # fast-changing state: limits, circuits, cache, routing, fan-out
      postgres: postgresql://postgres@127.0.0.1/toolmux   # durable records: usage, spend, budgets, keys
      prefix: "toolmux:"            # Redis key prefix (one per deployment of toolmux sharing a Redis)
      schema: toolmux               # PostgreSQL schema holding toolmux's tables
      advertise_url: http://10.0.0.5:4000   # where the other replicas reach this one (its sessions)

Either store may be given alone: the other part then stays embedded.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class StateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redis: str | None = Field(default=None, description="redis:// or rediss:// URL of the shared fast store")
    postgres: str | None = Field(default=None, description="postgresql:// URL of the shared durable store")
    prefix: str = Field(default="toolmux:", min_length=1, max_length=64, description="Redis key prefix")
    schema_name: str = Field(default="toolmux", alias="schema", description="PostgreSQL schema of toolmux's tables")
    pool_size: int = Field(default=10, ge=1, le=200, description="PostgreSQL connections per replica")
    heartbeat: float = Field(default=5.0, gt=0, le=300, description="seconds between a replica's registry heartbeats")
    advertise_url: str | None = Field(
        default=None,
        description="http://host:port where the other replicas reach this one (default: the hub's own URL); "
        "requests for a session this replica owns are forwarded there",
    )

    @model_validator(mode="before")
    @classmethod
    def _embedded_shorthand(cls, value: Any) -> Any:
        if value is None or value == "embedded":
            return {}
        if isinstance(value, str):
            raise ValueError("must be 'embedded' or a mapping with redis: and/or postgres: URLs")
        return value

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("postgres")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("schema_name")
    @classmethod
    def _schema(cls, value: str) -> str:
        if not _SCHEMA_RE.match(value):
            raise ValueError("must match [a-z_][a-z0-9_]* (at most 63 characters)")
        return value

    @property
    def embedded(self) -> bool:
        return self.redis is None and self.postgres is None
