"""Mail gateway figures against a local dovecot and SMTP receiver (the test fixtures), on loopback.

    .venv/bin/python bench/mail_gateway.py [--messages 500] [--rounds 50]

Prints latency (p50 / p95) of the read tools over a folder of N messages, the cost of a fresh
IMAP connection against a pooled one, concurrent read throughput, and send throughput. Needs
root (the fixture's dovecot drops to uid 65534) and Debian's dovecot-imapd (scripts/setup).
Figures are for the tool layer (Domain.call: validation + IMAP/SMTP + MIME work), no MCP transport.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servers.kit import Domain, ServerSettings, ToolContext, error_from_result
from servers.mail.server import create
from tests.support.mail import Dovecot, MailUser, SmtpSink


def sample_message(n: int, to: str) -> bytes:
    body = f"Message number {n}.\r\n" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 20
    return (
        f"From: Sender {n % 17} <sender{n % 17}@elsewhere.test>\r\nTo: {to}\r\n"
        f"Subject: Report {n} {'urgent' if n % 50 == 0 else 'weekly'}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{n % 60:02d}:00 +0000\r\nMessage-ID: <m{n}@elsewhere.test>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    ).encode()


async def call(domain: Domain, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await domain.call(tool, args, ToolContext(tool=tool, request_id="bench", hub=domain.hub))
    error = error_from_result(result)
    if error is not None:
        raise RuntimeError(f"{tool}: {error.message}")
    return dict(result["structuredContent"])


async def timed(rounds: int, fn: Callable[[], Awaitable[Any]]) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def row(name: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    print(f"  {name:<52} p50 {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms")


async def bench(messages: int, rounds: int) -> None:
    with Dovecot.started() as dovecot, SmtpSink.started(dovecot) as sink:
        alice, bob = dovecot.add_user(), dovecot.add_user()
        bob.deliver(*(sample_message(n, bob.address) for n in range(messages)))
        alice.deliver(*(sample_message(n, alice.address) for n in range(20)))
        config = {
            "accounts": [
                dovecot.account(alice, name="alice", smtp_port=sink.port),
                dovecot.account(bob, name="bob", smtp_port=sink.port),
            ]
        }
        domain = create(ServerSettings(name="mail", config=config))
        try:
            await run(domain, bob, messages, rounds)
        finally:
            await domain.service.aclose()


async def run(domain: Domain, bob: MailUser, messages: int, rounds: int) -> None:
    listing = await call(domain, "list_messages", {"mailbox": "bob", "limit": 1})  # warm: index built, pooled
    newest = listing["messages"][0]["uid"]
    print(f"mail gateway, local dovecot over loopback, folder of {messages} messages, {rounds} rounds each")
    row("list_messages (newest 20)", await timed(rounds, lambda: call(domain, "list_messages", {"mailbox": "bob"})))
    gateway = domain.service
    row(
        "list_messages (newest 20), gateway only",
        await timed(rounds, lambda: gateway.list_messages({"mailbox": "bob"})),
    )
    row(
        "list_messages (page 5 via before_uid)",
        await timed(rounds, lambda: call(domain, "list_messages", {"mailbox": "bob", "before_uid": newest - 80})),
    )
    row(
        "search subject (header)",
        await timed(rounds, lambda: call(domain, "search", {"mailbox": "bob", "subject": "urgent"})),
    )
    row(
        "search body text",
        await timed(rounds, lambda: call(domain, "search", {"mailbox": "bob", "body": "number 123."})),
    )
    row(
        "get_message (3 KB text message)",
        await timed(rounds, lambda: call(domain, "get_message", {"mailbox": "bob", "uid": newest})),
    )
    row("inbox (2 accounts, 20 newest)", await timed(rounds, lambda: call(domain, "inbox", {})))
    row(
        "mark_seen (1 UID)",
        await timed(rounds, lambda: call(domain, "mark_seen", {"mailbox": "bob", "uids": [newest]})),
    )

    pool = domain.service.pools["bob"]

    async def fresh_connection_call() -> None:
        await pool.aclose()
        pool._closed = False  # reopen the pool: the next call must connect and log in again
        await call(domain, "list_messages", {"mailbox": "bob", "limit": 1})

    row("list_messages on a fresh connection (connect+login)", await timed(min(rounds, 20), fresh_connection_call))
    row(
        "list_messages on a pooled connection",
        await timed(rounds, lambda: call(domain, "list_messages", {"mailbox": "bob", "limit": 1})),
    )

    concurrency, total = 8, rounds * 4
    start = time.perf_counter()

    async def reader(count: int) -> None:
        for i in range(count):
            await call(domain, "get_message", {"mailbox": "bob", "uid": newest - (i % 50)})

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(reader, total // concurrency)
    elapsed = time.perf_counter() - start
    callers = f"{concurrency} concurrent callers (pool {pool.config.pool_size})"
    print(f"  get_message, {callers}:    {total / elapsed:7.1f} calls/s")

    sends = rounds * 2
    start = time.perf_counter()
    for n in range(sends):
        await call(
            domain, "send", {"mailbox": "alice", "to": [bob.address], "subject": f"bench {n}", "text": "hello " * 50}
        )
    elapsed = time.perf_counter() - start
    smtp = domain.service.smtp["alice"]
    print(
        f"  send, sequential, one reused SMTP connection:   {sends / elapsed:7.1f} messages/s "
        f"({smtp.opened} connection(s) opened for {sends} sends)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    anyio.run(bench, args.messages, args.rounds)


if __name__ == "__main__":
    main()
