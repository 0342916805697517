"""Backend adapters, one per wire protocol, picked by `BackendConfig.type`."""

from __future__ import annotations

from servers.models.adapters.anthropic import AnthropicAdapter
from servers.models.adapters.base import Adapter
from servers.models.adapters.ollama import OllamaAdapter
from servers.models.adapters.openai import OpenAIAdapter
from servers.models.config import BackendConfig
from servers.models.errors import UnsupportedOperation

ADAPTERS: dict[str, type[Adapter]] = {"openai": OpenAIAdapter, "ollama": OllamaAdapter, "anthropic": AnthropicAdapter}


def create_adapter(name: str, config: BackendConfig) -> Adapter:
    return ADAPTERS[config.type](name, config)


__all__ = ["ADAPTERS", "Adapter", "UnsupportedOperation", "create_adapter"]
