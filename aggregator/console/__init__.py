"""The operator's console: keys managed as data (`/admin/keys`, `toolmux keys`), the web UI at `/ui/`,
and the LLM metrics the hub exports. See docs/console.md."""
