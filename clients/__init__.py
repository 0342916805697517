"""What users connect with: a Python client for a toolmux hub and config generators for MCP apps."""

from clients.hub import HttpHubCaller, HubClient

__all__ = ["HttpHubCaller", "HubClient"]
