"""Connections to upstream MCP servers: transports (channels), the JSON-RPC peer, supervision."""
