"""The toolmux hub: one MCP endpoint (stdio and streamable HTTP) over many MCP servers."""

__version__ = "0.1.0"
