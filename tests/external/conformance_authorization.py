"""Run the conformance suite's authorization-server scenarios against toolmux's built-in server.

The suite's `authorization` command checks the metadata document and one authorization code
grant; for the grant it prints a URL a person would open. Here that person is played over HTTP:
the consent page is read, approved with the master key, and the redirect is followed to the
suite's callback listener.

    python -m tests.external.conformance_authorization
"""

from __future__ import annotations

import re
import socket
import sys
import tempfile
from pathlib import Path

import anyio
import httpx2

from tests.aggregator.hubkit import MASTER_KEY, running_hub
from tests.aggregator.oauth.consenting_user import hidden_fields
from tests.external.conformance import NODE, SUITE

_TOTAL = re.compile(r"(\d+) passed, (\d+) failed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def approve(url: str) -> None:
    async with httpx2.AsyncClient() as http:
        page = await http.get(url)
        grant = [v.split('"')[0] for v in page.text.split('name="grant" value="')[1:]]
        fields = {**hidden_fields(page.text), "grant": grant, "secret": MASTER_KEY, "decision": "approve"}
        answer = await http.post(str(page.url), data=fields)
        await http.get(answer.headers["location"])


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        oauth = {"mode": "builtin", "scopes": {"tools": ["*"]}}
        async with running_hub(Path(tmp), {}, builtins=[], oauth=oauth) as hub:
            port = free_port()
            async with httpx2.AsyncClient() as http:
                client = (
                    await http.post(
                        f"{hub.url}/oauth/register",
                        json={
                            "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
                            "token_endpoint_auth_method": "none",
                        },
                    )
                ).json()
            command = [str(NODE), str(SUITE), "authorization", "--url", hub.url, "--client-id", client["client_id"]]
            command += ["--port", str(port), *sys.argv[1:]]
            output: list[str] = []
            async with await anyio.open_process(command) as process:
                assert process.stdout is not None
                async for chunk in process.stdout:
                    text = chunk.decode(errors="replace")
                    output.append(text)
                    for line in text.splitlines():
                        if line.startswith(hub.url + "/oauth/authorize?"):
                            await approve(line.strip())
            report = "".join(output)
            print(report)
            found = _TOTAL.findall(report)
            return 0 if found and all(int(failed) == 0 for _, failed in found) else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
