"""The browser server's config section.

    servers:
      browser:
        config:
          browsers: 2                     # Chromium processes in the pool
          max_sessions: 16
          idle_timeout_s: 600
          navigation:
            allow_hosts: ["intranet.example.com", "10.1.2.0/24"]
          eval_js: true
          screenshots: {bucket: default, ttl_seconds: 86400}

Every field has a safe default: private, loopback and link-local addresses are refused unless
allow-listed, downloads are off, and sessions expire when idle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from servers.kit.netpolicy import HostPolicyConfig

DEFAULT_CHROMIUM = "/usr/bin/chromium"

# Flags a locked-down, GPU-less machine (containers, CI) needs for headless Chromium.
DEFAULT_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class NavigationConfig(HostPolicyConfig):
    """Where the browser may go (the shared network policy's lists, under `navigation:`)."""


class ScreenshotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(default="default", description="Storage bucket screenshots are saved to")
    prefix: str = Field(default="browser/screenshots", description="Key prefix inside the bucket")
    ttl_seconds: int | None = Field(default=86400, gt=0, description="Stored screenshots expire after this")
    thumbnail_width: int = Field(default=320, ge=32, le=1280, description="Width of the image returned inline")


class BrowserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executable_path: str = Field(default=DEFAULT_CHROMIUM, description="Chromium binary (Debian's by default)")
    extra_args: list[str] = Field(default_factory=list, description="More Chromium command-line flags")
    browsers: int = Field(default=1, ge=1, le=16, description="Chromium processes in the pool")
    max_sessions: int = Field(default=16, ge=1, le=1000, description="Open sessions across all callers")
    max_tabs: int = Field(default=8, ge=1, le=100, description="Tabs one session may have open")
    js_heap_mb: int | None = Field(
        default=512, ge=16, description="V8 heap cap per renderer (MB): a runaway page dies instead of the machine"
    )
    idle_timeout_s: float = Field(default=600.0, gt=0, description="A session unused this long is closed")
    queue_timeout_s: float = Field(default=30.0, gt=0, description="Wait this long for a session's previous action")
    action_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Default timeout of element actions")
    navigation_timeout_s: float = Field(default=30.0, gt=0, le=600, description="Default timeout of goto/back/forward")
    launch_timeout_s: float = Field(default=30.0, gt=0, description="Wait this long for Chromium to start")
    viewport_width: int = Field(default=1280, ge=200, le=7680)
    viewport_height: int = Field(default=720, ge=200, le=4320)
    user_agent: str | None = Field(default=None, description="Override the browser's User-Agent")
    locale: str = "en-US"
    dialogs: Literal["accept", "dismiss"] = Field(
        default="accept", description="What happens to alert/confirm/prompt dialogs (each is reported)"
    )
    eval_js: bool = Field(default=True, description="Offer eval_js (and eval steps in run_script)")
    max_text_chars: int = Field(default=20000, ge=100, description="Default cap of text returned by one call")
    console_buffer: int = Field(default=200, ge=1, le=10000, description="Console messages kept per session")
    network_buffer: int = Field(default=500, ge=1, le=100000, description="Network requests kept per session")
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest total upload_file payload")
    navigation: NavigationConfig = Field(default_factory=NavigationConfig)
    screenshots: ScreenshotConfig = Field(default_factory=ScreenshotConfig)

    def launch_args(self) -> list[str]:
        args = [*DEFAULT_FLAGS, *self.extra_args]
        if self.js_heap_mb is not None:
            args.append(f"--js-flags=--max-old-space-size={self.js_heap_mb}")
        return args
