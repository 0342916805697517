"""The hub as an OAuth client of remote MCP servers (`mcpServers.<name>.oauth`)."""
