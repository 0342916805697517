"""The wire: JSON-RPC, MCP protocol eras, HTTP header rules and the error tree.

Everything else in toolmux imports from here; this package imports nothing of toolmux's own.
"""
