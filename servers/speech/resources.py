"""Speech's resource manager is the kit's (`servers.kit.resources`), shared with the images server."""

from servers.kit.resources import ResourceManager

__all__ = ["ResourceManager"]
