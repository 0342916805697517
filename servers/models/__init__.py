"""The models server: LLM chat and embeddings behind stable aliases (see docs/models.md)."""
