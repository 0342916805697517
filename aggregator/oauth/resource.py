"""toolmux as a protected resource (RFC 9728, RFC 8707): which resource a path is, its metadata
document, the 401 challenge that points to it, and which token audiences it accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WELL_KNOWN_PRM = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"


def resource_path(request_path: str) -> str:
    """The protected resource a request path belongs to: `/mcp` and every path under it (toolset
    paths `/mcp/<toolset>`) are resources of their own; everything else is the hub's root."""
    path = request_path.rstrip("/")
    if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
        return path
    return ""


@dataclass(frozen=True)
class ProtectedResource:
    public_url: str  # http(s)://host[:port], no trailing slash
    issuer: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...] = ()

    def resource(self, path: str) -> str:
        return self.public_url + path

    def metadata_url(self, request_path: str) -> str:
        return self.public_url + WELL_KNOWN_PRM + resource_path(request_path)

    def metadata(self, path: str) -> dict[str, Any]:
        """RFC 9728 document for the resource at `path` (`""`, `/mcp`, `/mcp/<toolset>`)."""
        return {
            "resource": self.resource(path),
            "authorization_servers": [self.issuer],
            "scopes_supported": list(self.scopes),
            "bearer_methods_supported": ["header"],
            "resource_name": "toolmux",
        }

    def challenge(self, request_path: str, error: str | None = None) -> str:
        """The `WWW-Authenticate` value of a 401 on `request_path` (MCP authorization, RFC 6750)."""
        # No `scope=`: no call needs one scope in particular; clients take scopes_supported, and
        # the person consenting narrows them.
        parts = [f'resource_metadata="{self.metadata_url(request_path)}"']
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ", ".join(parts)

    def accepts_audience(self, audiences: list[str]) -> bool:
        """A token is for this hub when one of its audiences is a configured one or, with none
        configured, the hub's MCP resource or one of the resources under it (toolset paths)."""
        for aud in audiences:
            canonical = aud.rstrip("/")
            if self.audience:
                if canonical in self.audience:
                    return True
                continue
            mcp = self.public_url + MCP_PATH
            if canonical == mcp or canonical.startswith(mcp + "/") or canonical == self.public_url:
                return True
        return False
