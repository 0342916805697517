"""Tests that drive third-party MCP clients installed from npm (scripts/setup installs them)."""
