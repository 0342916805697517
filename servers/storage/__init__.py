"""storage: buckets of objects behind MCP tools, with an HTTP API and S3 compatibility on the hub."""
