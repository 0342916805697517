"""toolmux configuration: one YAML file, validated by pydantic, read once.

    builtins: auto                 # enable every built-in server whose dependencies are present
    server: {host: 127.0.0.1, port: 4000, data_dir: ./toolmux-data, public_url: null}
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

SERVER_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The config is invalid. `problems` holds one `file: key.path: why` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RestartPolicy(_Model):
    policy: Literal["always", "on-failure", "never"] = "always"
    initial_backoff: float = Field(0.5, gt=0, le=60)
    max_backoff: float = Field(30.0, gt=0, le=3600)


class Timeouts(_Model):
    connect: float = Field(30.0, gt=0, description="seconds to spawn/connect and finish the handshake")
    call: float = Field(120.0, gt=0, description="seconds one tools/call (or other request) may take")
    list: float = Field(15.0, gt=0, description="seconds for tools/resources/prompts listing")


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
    transport: Literal["auto", "streamable-http", "sse"] = "auto"
    protocol: Literal["auto", "legacy", "modern"] = Field(
        "auto",
        description="auto probes with server/discover and speaks the stateless 2026-07-28 revision when the "
        "server does, else the 2025-11-25 session handshake",
    )
    type: str | None = Field(None, description="accepted for compatibility with other configs; ignored")
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


class AuthConfig(_Model):
    master_key: str | None = Field(None, min_length=16)
    keys: list[KeyEntry] = Field(default_factory=list)
    anonymous: str | None = Field(
        None,
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
    max_request_bytes: int = Field(10 * 1024 * 1024, gt=0)
    body_timeout: float = Field(30.0, gt=0, description="seconds a client may take to send one request body")
    session_idle_timeout: float = Field(3600.0, gt=0)
    max_sessions: int = Field(10000, gt=0)


class ServerSection(_Model):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    data_dir: str = "./toolmux-data"
    public_url: str | None = None
    startup_timeout: float = Field(30.0, gt=0, description="seconds to wait for upstreams before serving")


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
    images: FacadeLimit = _limit(600.0, 1 * _MiB)  # /v1/images/generations (one prompt; generation is slow)
    hub_tools: HubToolsConfig = Field(default_factory=HubToolsConfig)


class CatalogConfig(_Model):
    separator: Literal["-", "_", "."] = "-"


class HubConfig(_Model):
    server: ServerSection = Field(default_factory=ServerSection)
    http: HttpConfig = Field(default_factory=HttpConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    facades: FacadesConfig = Field(default_factory=FacadesConfig)
    builtins: Literal["auto"] | list[str] = "auto"
    servers: dict[str, ServerEntry] = Field(default_factory=dict, alias="mcpServers")

    @field_validator("servers")
    @classmethod
    def _names(cls, servers: dict[str, ServerEntry]) -> dict[str, ServerEntry]:
        bad = [n for n in servers if not SERVER_NAME_RE.match(n)]
        if bad:
            raise ValueError(f"server names must match [a-z0-9_]+ (got {', '.join(map(repr, bad))})")
        return servers

    source: str | None = Field(None, exclude=True, description="file the config came from")

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir).expanduser()


def interpolate(value: Any, path: str, problems: list[str], environ: dict[str, str]) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set (use ${{{name}:-default}})")
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}" if path else str(k), problems, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", problems, environ) for i, v in enumerate(value)]
    return value


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def parse(data: Any, source: str = "<config>", environ: dict[str, str] | None = None) -> HubConfig:
    """Validate an already-parsed YAML tree."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping"])
    problems: list[str] = []
    data = interpolate(data, "", problems, dict(os.environ) if environ is None else environ)
    if problems:
        raise ConfigError([f"{source}: {p}" for p in problems])
    try:
        config = HubConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = _format_loc(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{source}: {loc}: {msg}")
        raise ConfigError(lines) from None
    config.source = source
    return config


def load(path: str | Path, environ: dict[str, str] | None = None) -> HubConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}: {where}invalid YAML: {problem}"]) from None
    return parse(data, str(path), environ)


def default() -> HubConfig:
    """The embedded default: every available built-in, local only."""
    return parse({}, "<embedded default>")
