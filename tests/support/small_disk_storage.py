"""Serve the storage face with its data on a 1 MiB tmpfs, for disk-full tests.

    unshare -Urm --propagation private python -m tests.support.small_disk_storage DIR

Run inside a user + mount namespace (unprivileged): the tmpfs exists only in this process's
namespace and vanishes with it, so nothing needs cleaning up and the host is never touched.
Prints the port on stdout once it listens; the master key is `MASTER_KEY` below.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MASTER_KEY = "small-disk-master-key-0123456789"
SIZE = "1m"


def main(directory: str) -> None:
    import uvicorn
    from starlette.applications import Starlette

    from aggregator.facade.base import DirectFacadeContext
    from aggregator.facade.storage import routes
    from servers.kit import ServerSettings
    from servers.storage.server import create
    from tests.support.asgi import bound_socket

    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", directory], check=True)
    domain = create(ServerSettings(name="storage", data_dir=Path(directory)))
    app = Starlette(routes=routes(DirectFacadeContext({"storage": domain}, master_key=MASTER_KEY)))
    sock = bound_socket()
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run([sock])


if __name__ == "__main__":
    main(sys.argv[1])
