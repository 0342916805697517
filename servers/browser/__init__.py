"""Headless Chromium automation as MCP tools (Playwright driving Debian's Chromium)."""
