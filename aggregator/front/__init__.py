"""The hub's MCP faces: protocol core (transport-agnostic), stdio and streamable HTTP."""
