"""HTTP faces other than MCP (OpenAI-compatible `/v1`, storage, forecast, mail, ...).

Each facade module defines its endpoints as plain functions on the facade kit (`kit.py`: auth,
body rules, limits, timeouts and error rendering, once) and `routes(ctx: FacadeContext) ->
list[BaseRoute]`; the hub mounts them all on its HTTP app. Facades translate HTTP onto tool
calls through dispatch, so scopes, validation and metrics are the same as on the MCP face.
"""

# Module paths of every facade the hub mounts, in order (first match wins for a path).
FACADE_MODULES: list[str] = [
    "aggregator.facade.forecast",
    "aggregator.facade.storage",
    "aggregator.facade.mail",
    "aggregator.facade.openai",
    "aggregator.facade.responses",
    "aggregator.facade.messages",
    "aggregator.facade.images",
    "aggregator.facade.ollama",
    "aggregator.facade.browser",
    "aggregator.facade.audio",
    "aggregator.facade.workspaces",
    "aggregator.facade.web",
    "aggregator.console.admin_api",
    "aggregator.console.ui",
]
