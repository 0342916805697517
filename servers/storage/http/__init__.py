"""Storage's own HTTP API and S3 face (mounted by the hub; see `mount`)."""
