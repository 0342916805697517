"""Console sign-in: sessions behind an HttpOnly, SameSite=Strict cookie, a CSRF token per session,
and a sign-in rate limit per client address.

Sessions live in this replica's memory (behind a balancer, pin /ui/ to one replica or sign in
again). A session keeps the key's name, not its secret: each request resolves the name again, so
a key revoked or stripped of its admin scope ends its sessions at once.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aggregator.principal import Principal

COOKIE = "toolmux_console"
LOGIN_COOKIE = "toolmux_console_login"  # the sign-in form's own CSRF token, before there is a session
IDLE_SECONDS = 8 * 3600
SIGN_IN_ATTEMPTS = 5  # failed sign-ins per client address per window
SIGN_IN_WINDOW = 60.0


@dataclass
class Session:
    key_name: str
    csrf: str
    last_seen: float = field(default_factory=time.time)


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}

    def open(self, principal: Principal) -> tuple[str, Session]:
        self._expire()
        token = secrets.token_urlsafe(32)
        session = Session(principal.name, secrets.token_urlsafe(24), self.clock())
        self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > IDLE_SECONDS:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def _expire(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > IDLE_SECONDS]:
            del self._sessions[token]

    # --- sign-in rate limit ----------------------------------------------------------------------
    def retry_after(self, client: str) -> float:
        """Seconds before `client` may try again (0: it may now)."""
        window = self._failures.get(client)
        if window is None:
            return 0.0
        now = self.clock()
        while window and now - window[0] > SIGN_IN_WINDOW:
            window.popleft()
        if len(window) < SIGN_IN_ATTEMPTS:
            return 0.0
        return max(SIGN_IN_WINDOW - (now - window[0]), 1.0)

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(self.clock())
        if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
            self._failures.pop(next(iter(self._failures)))
