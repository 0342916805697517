"""Built-in domain servers. Each package is a standalone MCP server built with `servers.kit`."""
