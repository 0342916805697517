"""The built-in domain servers the hub knows by name, and whether each can run on this machine.

A server's module defines `create(settings: ServerSettings) -> Domain`. Availability is
checked without importing the (often heavy) module: the Python packages and executables it
needs are looked up, and a missing one is reported with the reason and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from servers.kit.domain import Domain
    from servers.kit.settings import ServerSettings

Mode = Literal["inprocess", "stdio"]


@dataclass(frozen=True)
class BuiltinServer:
    name: str
    summary: str
    module: str
    python_modules: tuple[str, ...] = ()
    executables: tuple[str, ...] = ()
    extra: str | None = None
    default_mode: Mode = "stdio"
    # Enabled by `builtins: auto` (the embedded default); the demo server is opt-in.
    auto: bool = True
    # "module:Class" of the pydantic model of the server's config section (for `toolmux config check`).
    config_model: str | None = None

    def config_class(self) -> type[Any] | None:
        if self.config_model is None:
            return None
        module, _, name = self.config_model.partition(":")
        cls: type[Any] = getattr(importlib.import_module(module), name)
        return cls

    def unavailable_reason(self) -> str | None:
        """Why this server cannot run here (None when it can)."""
        if importlib.util.find_spec(self.module.rsplit(".", 1)[0]) is None:
            return f"package {self.module} is not part of this installation"
        install = f" (install the extra: pip install 'toolmux[{self.extra}]')" if self.extra else ""
        for module in self.python_modules:
            if importlib.util.find_spec(module) is None:
                return f"Python package '{module}' is not installed{install}"
        for exe in self.executables:
            if shutil.which(exe) is None:
                return f"executable '{exe}' is not on PATH (scripts/setup installs it from Debian)"
        return None

    def create(self, settings: ServerSettings) -> Domain:
        module = importlib.import_module(self.module)
        domain: Domain = module.create(settings)
        return domain


BUILTINS: dict[str, BuiltinServer] = {
    "demo": BuiltinServer(
        name="demo",
        summary="A tiny server for trying toolmux: echo, add, a slow counter with progress.",
        module="servers.demo.server",
        default_mode="inprocess",
        auto=False,
    ),
    "forecast": BuiltinServer(
        name="forecast",
        summary="Time-series forecasts with quantiles, weighted ensembles, sample paths and backtests "
        "(statsforecast, statsmodels; foundation models when installed with local weights).",
        module="servers.forecast.server",
        config_model="servers.forecast.config:ForecastConfig",
        python_modules=("statsforecast", "statsmodels"),
        extra="forecast",
        # Heavy imports (pandas, scipy, statsmodels) and native fitting code: keep them out of the hub.
        default_mode="stdio",
    ),
    "storage": BuiltinServer(
        name="storage",
        summary="Buckets of objects: MCP tools, an HTTP API and S3 compatibility (boto3) under /storage/.",
        module="servers.storage.server",
        config_model="servers.storage.config:StorageConfig",
        extra="storage",
        default_mode="inprocess",
    ),
    "browser": BuiltinServer(
        name="browser",
        summary="Headless Chromium for agents: pages as accessibility snapshots with refs, click/fill/type, waits, "
        "JavaScript, screenshots to storage, multi-step scripts; a pool of browsers with sticky sessions.",
        module="servers.browser.server",
        config_model="servers.browser.config:BrowserConfig",
        python_modules=("playwright", "PIL"),
        executables=("chromium",),
        extra="browser",
        # A browser can crash or eat memory: keep it in its own process, away from the hub.
        default_mode="stdio",
    ),
    "mail": BuiltinServer(
        name="mail",
        summary="IMAP/SMTP gateway over configured email accounts: unified inbox, search, read, send, file, delete.",
        module="servers.mail.server",
        config_model="servers.mail.config:MailConfig",
        extra="mail",
        default_mode="inprocess",
    ),
    "models": BuiltinServer(
        name="models",
        summary="LLM chat and embeddings behind stable aliases: OpenAI-compatible, Ollama and Anthropic "
        "backends with failover, cache, usage and budgets.",
        module="servers.models.server",
        config_model="servers.models.config:ModelsConfig",
        default_mode="inprocess",
    ),
    "images": BuiltinServer(
        name="images",
        summary="Image generation over local backends (stable-diffusion.cpp server, LocalAI, Automatic1111/Forge); "
        "images saved in storage and returned as URLs.",
        module="servers.images.server",
        config_model="servers.images.config:ImagesConfig",
        # It only talks HTTP to the backends (the heavy work runs there): no reason to leave the hub.
        default_mode="inprocess",
    ),
    "speech": BuiltinServer(
        name="speech",
        summary="Speech-to-text and text-to-speech that work offline (pocketsphinx, piper, espeak-ng; "
        "faster-whisper with a local model).",
        module="servers.speech.server",
        config_model="servers.speech.config:SpeechConfig",
        python_modules=("numpy",),
        executables=("ffmpeg", "ffprobe"),
        extra="speech",
        # Native engines (onnxruntime, pocketsphinx, CTranslate2) and their memory stay out of the hub.
        default_mode="stdio",
    ),
    "web": BuiltinServer(
        name="web",
        summary="Web search through SearXNG (or Brave's API) and any page, PDF, text or JSON read as clean "
        "Markdown or text, with the browser's network policy; /web/ over HTTP.",
        module="servers.web.server",
        config_model="servers.web.config:WebConfig",
        python_modules=("trafilatura", "pypdf", "charset_normalizer"),
        extra="web",
        # Extraction costs ~90 ms CPU per 200 KB article (bench/web.py) and parses untrusted HTML and
        # PDF: keep that CPU, and any parser blow-up, out of the hub. `mode: inprocess` saves a hop.
        default_mode="stdio",
    ),
    "workspaces": BuiltinServer(
        name="workspaces",
        summary="Directories where an agent runs tasks with file and shell tools (bubblewrap sandbox when "
        "available): files, runs (sync, async, cancel), sessions; HTTP under /workspaces/.",
        module="servers.workspaces.server",
        config_model="servers.workspaces.config:WorkspacesConfig",
        extra="workspaces",
        # It runs shell commands and agent CLIs as subprocesses: keep them, and their failures, out of the hub.
        default_mode="stdio",
    ),
}


def get(name: str) -> BuiltinServer:
    try:
        return BUILTINS[name]
    except KeyError:
        raise KeyError(f"no built-in server {name!r}; built-ins: {', '.join(sorted(BUILTINS))}") from None
