"""toolmux configuration: one YAML file, validated by pydantic, read once.

    builtins: auto                 # enable every built-in server whose dependencies are present
    server: {host: 127.0.0.1, port: 4000, data_dir: null, public_url: null}   # data_dir: see aggregator.datadir
    http: {allowed_origins: [], allowed_hosts: [], max_request_bytes: 10485760}
    facades: {llm: {timeout: 600, max_body_bytes: 16777216}, mail: {...}, ...}   # see FacadesConfig
    auth:
      master_key: ${TOOLMUX_MASTER_KEY}
      keys: [{name: librechat, key: ${LIBRECHAT_KEY}, tools: ["storage-*"]}]
    mcpServers:                    # Claude Desktop compatible, plus toolmux options
      github: {command: npx, args: [-y, "@modelcontextprotocol/server-github"], env: {...}}
      remote: {url: https://example.com/mcp, headers: {Authorization: "Bearer ${TOKEN}"}}
      storage: {config: {buckets: [...]}}       # a built-in, by name

`${VAR}` and `${VAR:-default}` are replaced in every string value (after YAML parsing, so a
secret can never inject YAML). A missing variable without a default is an error naming the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aggregator import datadir
from aggregator.oauth.config import OAuthConfig, UpstreamOAuth
from aggregator.principal import Scope
from aggregator.state.config import StateConfig

SERVER_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def server_prefix(name: str) -> str:
    """The tool-name prefix of a configured server name.

    `-` separates prefix and tool, so a prefix is `[a-z0-9_]+`: a valid name is kept as it is;
    any other is lowercased and each run of other characters becomes one `_`, trimmed at the
    ends (`brave-search` -> `brave_search`, `GitHub` -> `github`, `My Server.v2` -> `my_server_v2`).
    """
    if SERVER_NAME_RE.match(name):
        return name
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")


class ConfigError(ValueError):
    """The config is invalid. `problems` holds one `file: key.path: why` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RestartPolicy(_Model):
    policy: Literal["always", "on-failure", "never"] = "always"
    first_delay: float = Field(default=0.0, ge=0, le=60, description="seconds before restarting after one crash")
    initial_backoff: float = Field(
        default=0.5, gt=0, le=60, description="seconds before the next restart when it keeps crashing; doubles"
    )
    max_backoff: float = Field(default=30.0, gt=0, le=3600)
    stable_after: float = Field(
        default=30.0, gt=0, description="seconds up after which a crash counts as a first crash again"
    )


class Timeouts(_Model):
    connect: float = Field(default=30.0, gt=0, description="seconds to spawn/connect and finish the handshake")
    call: float = Field(default=120.0, gt=0, description="seconds one tools/call (or other request) may take")
    list: float = Field(default=15.0, gt=0, description="seconds for tools/resources/prompts listing")


class ToolFilter(_Model):
    allow: list[str] = Field(default_factory=lambda: ["*"])
    deny: list[str] = Field(default_factory=list)


class ServerEntry(_Model):
    """One upstream MCP server. Claude Desktop's keys (command/args/env/cwd, url/headers) plus ours."""

    # stdio (Claude Desktop)
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    # remote
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    oauth: UpstreamOAuth | None = Field(default=None, description="sign in to this http server with OAuth 2.1")
    transport: Literal["auto", "streamable-http", "sse"] = "auto"
    protocol: Literal["auto", "legacy", "modern"] = Field(
        default="auto",
        description="auto probes with server/discover and speaks the stateless 2026-07-28 revision when the "
        "server does, else the 2025-11-25 session handshake",
    )
    type: str | None = Field(default=None, description="accepted for compatibility with other configs; ignored")
    # built-in domain server
    builtin: str | None = None
    mode: Literal["inprocess", "stdio"] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    # toolmux options
    enabled: bool = True
    prefix: Literal["always", "never"] = "always"
    tools: ToolFilter = Field(default_factory=ToolFilter)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    description: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ServerEntry:
        kinds = [k for k, v in (("command", self.command), ("url", self.url), ("builtin", self.builtin)) if v]
        if len(kinds) > 1:
            raise ValueError(f"give only one of command, url, builtin (got {', '.join(kinds)})")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        if self.oauth is not None and not self.url:
            raise ValueError("oauth applies to servers reached over http (give url)")
        return self

    @property
    def kind(self) -> Literal["stdio", "http", "builtin"]:
        if self.command:
            return "stdio"
        if self.url:
            return "http"
        return "builtin"


class KeyEntry(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key: str = Field(min_length=16)
    tools: list[str] = Field(default_factory=lambda: ["*"], description="allowed tool-name globs")
    deny: list[str] = Field(default_factory=list, description="denied tool-name globs (win over tools)")
    toolset: str | None = Field(default=None, description="the toolset this key sees unless a path names another")
    lazy: bool = Field(default=False, description="show this key the catalog as search / describe / call tools")
    scopes: list[Scope] = Field(
        default_factory=list,
        description="extra rights: 'metrics' reads /metrics and the detailed /health; 'admin' also manages keys "
        "(/admin/keys) and signs in to the console (/ui/)",
    )


class ToolsetEntry(_Model):
    """A named selection of tools: a client picks it by path (/mcp/<name>/), key or `--toolset`."""

    tools: list[str] = Field(default_factory=list, description="globs over catalog tool names")
    servers: dict[str, list[str]] = Field(
        default_factory=dict, description="per-server picks: server name -> globs over that server's tool names"
    )
    lazy: bool = Field(default=False, description="expose only search_tools, describe_tool and call_tool")
    compact: bool = Field(default=False, description="trim each tool description to its first sentence")

    @model_validator(mode="after")
    def _selects_something(self) -> ToolsetEntry:
        if not self.tools and not self.servers:
            raise ValueError("a toolset needs 'tools' globs or 'servers' picks")
        return self


TOOLSET_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class AuthConfig(_Model):
    master_key: str | None = Field(default=None, min_length=16)
    keys: list[KeyEntry] = Field(default_factory=list)
    anonymous: str | None = Field(
        default=None,
        description="act as this key ('master' or a named key) for requests that carry no key at all; "
        "a wrong key is still refused. For single-user machines; never on a public address.",
    )

    @model_validator(mode="after")
    def _anonymous_known(self) -> AuthConfig:
        names = {"master", *(k.name for k in self.keys)}
        if self.anonymous is not None and self.anonymous not in names:
            raise ValueError(f"anonymous must name 'master' or a configured key (got {self.anonymous!r})")
        return self

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[KeyEntry]) -> list[KeyEntry]:
        names = [k.name for k in keys]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({"master"} & set(names)))
        if dupes:
            raise ValueError(f"key names must be unique and not 'master': {', '.join(dupes)}")
        return keys


class HttpConfig(_Model):
    allowed_origins: list[str] = Field(default_factory=list, description="extra Origins (scheme://host[:port])")
    allowed_hosts: list[str] = Field(default_factory=list, description="extra Host headers (host[:port])")
    max_request_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    body_timeout: float = Field(default=30.0, gt=0, description="seconds a client may take to send one request body")
    session_idle_timeout: float = Field(default=3600.0, gt=0)
    max_sessions: int = Field(default=10000, gt=0)
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a request's line and headers may take to arrive (408 and close)"
    )
    max_connections: int = Field(
        default=2048, gt=0, description="open HTTP connections at most; one more gets 503 and is closed"
    )
    keep_alive_timeout: int = Field(default=75, gt=0, description="seconds an idle kept-alive connection stays open")
    max_buffered_response_bytes: int = Field(
        default=256 * 1024 * 1024, gt=0, description="response bytes held for all clients at most (503 beyond)"
    )
    max_connection_response_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="response bytes held for one connection at most (413 beyond)"
    )
    send_timeout: float = Field(
        default=60.0, gt=0, description="seconds a client may take no bytes of its response before it is dropped"
    )


class ServerSection(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    data_dir: str | None = Field(
        default=None,
        description="state directory; relative to this file. --data-dir and $TOOLMUX_DATA_DIR win over it; "
        "unset means the platform's user data dir",
    )
    public_url: str | None = None
    startup_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for upstreams before serving")


_MiB = 1024 * 1024


class FacadeLimit(_Model):
    """What one kind of facade request may take: wall-clock seconds and request-body bytes."""

    timeout: float = Field(gt=0, description="seconds the whole request may take (a streamed answer included)")
    max_body_bytes: int = Field(gt=0, description="largest request body accepted (413 beyond)")


def _limit(timeout: float, max_body_bytes: int) -> Any:
    return Field(default_factory=lambda: FacadeLimit(timeout=timeout, max_body_bytes=max_body_bytes))


class HubToolsConfig(_Model):
    """Bounds of the tool loop the hub runs for a model (`mcp` tools on /v1/responses, `toolmux_tools`
    on /v1/chat/completions): model rounds, wall-clock seconds, and how much of a tool's answer
    goes back to the model."""

    max_rounds: int = Field(default=8, ge=1, le=64, description="model calls per request, tool rounds included")
    max_seconds: float = Field(default=300.0, gt=0, description="wall-clock bound of the whole loop")
    max_output_chars: int = Field(
        default=20_000, ge=256, description="a tool answer longer than this is cut for the model"
    )


class FacadesConfig(_Model):
    """Timeouts and body limits of the HTTP facades (/v1, /api, /mail, ...), one entry per kind of
    request. The domain servers enforce their own limits too; these bound the HTTP request."""

    llm: FacadeLimit = _limit(600.0, 16 * _MiB)  # /v1 chat, completions, embeddings, models; Ollama /api
    audio_transcription: FacadeLimit = _limit(900.0, 25 * _MiB)  # the audio file (OpenAI's upload limit)
    audio_speech: FacadeLimit = _limit(900.0, 1 * _MiB)
    audio_voices: FacadeLimit = _limit(30.0, 64 * 1024)
    mail: FacadeLimit = _limit(300.0, 256 * 1024)
    mail_send: FacadeLimit = _limit(300.0, 48 * _MiB)  # inline base64 attachments
    workspaces_files: FacadeLimit = _limit(120.0, 64 * _MiB)
    workspaces_runs: FacadeLimit = _limit(24 * 3600.0, 4 * _MiB)  # the server's run_timeout is the real bound
    workspaces_run_result: FacadeLimit = _limit(330.0, 64 * 1024)  # ?wait= may hold it up to 300 s
    workspaces_run_cancel: FacadeLimit = _limit(60.0, 64 * 1024)
    browser: FacadeLimit = _limit(660.0, 32 * _MiB)  # run_script may run 600 s; upload_file carries base64
    forecast: FacadeLimit = _limit(900.0, 32 * _MiB)
    forecast_models: FacadeLimit = _limit(30.0, 64 * 1024)
    web: FacadeLimit = _limit(660.0, 64 * 1024)  # the web server bounds each fetch and render itself
    images: FacadeLimit = _limit(600.0, 1 * _MiB)  # /v1/images/generations (one prompt; generation is slow)
    oauth: FacadeLimit = _limit(30.0, 64 * 1024)  # OAuth metadata, registration, consent, token endpoints
    hub_tools: HubToolsConfig = Field(default_factory=HubToolsConfig)
    admin: FacadeLimit = _limit(30.0, 64 * 1024)  # /admin/keys
    console: FacadeLimit = _limit(60.0, 256 * 1024)  # the web UI at /ui/ (its tool-call form included)


class CatalogConfig(_Model):
    separator: Literal["-", "_", "."] = "-"


class MetricsConfig(_Model):
    litellm_names: bool = Field(
        default=False,
        description="also export the LLM families under LiteLLM's Prometheus names (docs/metrics.md), so "
        "dashboards built for LiteLLM work unchanged",
    )


class HubConfig(_Model):
    server: ServerSection = Field(default_factory=ServerSection)
    http: HttpConfig = Field(default_factory=HttpConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    facades: FacadesConfig = Field(default_factory=FacadesConfig)
    builtins: Literal["auto"] | list[str] = "auto"
    servers: dict[str, ServerEntry] = Field(default_factory=dict, alias="mcpServers")
    state: StateConfig = Field(default_factory=StateConfig, description="embedded, or shared Redis/PostgreSQL")
    toolsets: dict[str, ToolsetEntry] = Field(default_factory=dict, description="named selections of tools")

    @model_validator(mode="after")
    def _toolsets_known(self) -> HubConfig:
        for name in self.toolsets:
            if not re.match(TOOLSET_NAME, name):
                raise ValueError(f"toolset name {name!r} must be lowercase letters, digits, '_' or '-' (a URL path)")
        for key in self.auth.keys:
            if key.toolset is not None and key.toolset not in self.toolsets:
                raise ValueError(f"key {key.name!r} names toolset {key.toolset!r}, which is not in 'toolsets'")
        return self

    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    oauth: OAuthConfig = Field(default_factory=OAuthConfig, description="OAuth 2.1 sign-in beside the keys")

    @field_validator("servers", mode="before")
    @classmethod
    def _names(cls, servers: Any) -> Any:
        """Accept any Claude Desktop name; the key becomes its tool-name prefix by `server_prefix`."""
        if not isinstance(servers, dict):
            return servers
        renamed: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for name, entry in servers.items():
            prefix = server_prefix(str(name))
            if not prefix:
                raise ValueError(f"server name {name!r} has no letter or digit to make a tool-name prefix from")
            if prefix in sources:
                raise ValueError(
                    f"servers {sources[prefix]!r} and {name!r} both become the prefix {prefix!r}; rename one"
                )
            sources[prefix] = str(name)
            renamed[prefix] = entry
        return renamed

    source: str | None = Field(default=None, exclude=True, description="file the config came from")

    @property
    def data_dir(self) -> Path:
        """The configured data dir as an absolute path (the CLI has already applied flag and environment)."""
        return datadir.resolve(None, self.server.data_dir, config_file=self.source, environ={})


Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


def _interpolate(value: Any, loc: Loc, problems: list[Problem], environ: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append((loc, f"environment variable {name} is not set (use ${{{name}:-default}})"))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, str(k)), problems, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), problems, environ) for i, v in enumerate(value)]
    return value


def interpolate(value: Any, path: str, problems: list[str], environ: dict[str, str]) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree."""
    found: list[Problem] = []
    result = _interpolate(value, (path,) if path else (), found, environ)
    problems.extend(f"{_format_loc(loc)}: {why}" for loc, why in found)
    return result


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _plain(err: Any) -> str:
    """A pydantic error message in plain words."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required, but missing"
    return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _either(messages: list[str]) -> str:
    """One message for the members of a union: "Input should be 'auto' or a valid list"."""
    unique = list(dict.fromkeys(messages))
    lead = "Input should be "
    return " or ".join([unique[0], *(m.removeprefix(lead) if unique[0].startswith(lead) else m for m in unique[1:])])


def _is_union_tag(part: str | int) -> bool:
    # pydantic names the member of a union it tried (`literal['auto']`, `list[str]`): not a key of the file.
    return isinstance(part, str) and ("[" in part or "'" in part or part.startswith("function-"))


def model_problems(model: type[BaseModel], data: Any, at: Loc = ()) -> list[Problem]:
    """Every validation problem of `data` against `model`, located under `at`."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        merged: dict[Loc, list[str]] = {}
        for err in exc.errors():
            loc = (*at, *(p for p in err["loc"] if not _is_union_tag(p)))
            merged.setdefault(loc, []).append(_plain(err))
        return [(loc, _either(msgs)) for loc, msgs in merged.items()]
    return []


def builtin_problems(data: dict[str, Any]) -> list[Problem]:
    """Problems in the `config:` sections of built-in servers, checked against each server's own model."""
    from servers import registry

    key = "mcpServers" if "mcpServers" in data else "servers"
    servers = data.get(key)
    if not isinstance(servers, dict):
        return []
    problems: list[Problem] = []
    for name, entry in servers.items():
        if not isinstance(entry, dict) or entry.get("command") or entry.get("url"):
            continue
        builtin = registry.BUILTINS.get(str(entry.get("builtin") or server_prefix(str(name))))
        if builtin is None or not isinstance(entry.get("config", {}), dict):
            continue
        model = builtin.config_class()
        if model is not None:
            problems += model_problems(model, entry.get("config", {}), (key, server_prefix(str(name)), "config"))
    return problems


def validate(data: Any, environ: dict[str, str] | None = None, *, builtins: bool = False) -> tuple[Any, list[Problem]]:
    """(HubConfig or None, every problem found): interpolation, structure, and optionally built-ins' sections."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [((), "the top level must be a mapping")]
    problems: list[Problem] = []
    data = _interpolate(data, (), problems, dict(os.environ) if environ is None else environ)
    unset = {loc for loc, _ in problems}
    # A value left empty by an unset variable would only repeat that problem in other words.
    problems += [p for p in model_problems(HubConfig, data) if p[0] not in unset]
    if builtins:
        problems += [p for p in builtin_problems(data) if p[0] not in unset]
    if problems:
        return None, problems
    return HubConfig.model_validate(data), []


def parse(data: Any, source: str = "<config>", environ: dict[str, str] | None = None) -> HubConfig:
    """Validate an already-parsed YAML tree."""
    config, problems = validate(data, environ)
    if config is None:
        raise ConfigError([f"{source}: {_format_loc(loc)}: {why}" for loc, why in problems])
    assert isinstance(config, HubConfig)
    config.source = source
    return config


def key_lines(text: str) -> dict[Loc, int]:
    """{key path: 1-based line} of every mapping key and sequence item in a YAML document."""
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, loc: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if loc in (("mcpServers",), ("servers",)):  # servers are validated under their prefix
                    key = server_prefix(key)
                lines[(*loc, key)] = key_node.start_mark.line + 1
                walk(value_node, (*loc, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*loc, i)] = item.start_mark.line + 1
                walk(item, (*loc, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    """The line of the deepest part of `loc` the file has (a missing key points at its parent)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def load(path: str | Path, environ: dict[str, str] | None = None, *, builtins: bool = False) -> HubConfig:
    """Read and validate a YAML config file; every problem is reported as `file:line: key.path: why`.

    `builtins=True` also checks the built-in servers' own `config:` sections (as `config check` does).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
        lines = key_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            f"{mark.line + 1}: invalid YAML at line {mark.line + 1}, column {mark.column + 1}"
            if mark
            else " invalid YAML"
        )
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}:{where}: {problem}"]) from None
    config, problems = validate(data, environ, builtins=builtins)
    if config is None:
        located = sorted(((_line_of(loc, lines), loc, why) for loc, why in problems), key=lambda p: p[0])
        raise ConfigError([f"{path}:{line}: {_format_loc(loc)}: {why}" for line, loc, why in located])
    assert isinstance(config, HubConfig)
    config.source = str(path)
    return config


def default() -> HubConfig:
    """The embedded default: every available built-in, local only."""
    return parse({}, "<embedded default>")
