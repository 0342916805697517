"""Cheap unique ids for requests and streams: a per-process random prefix and a counter.

Unique within and across hub processes (the prefix is random per process) and cheap enough for
the hot path, where a fresh random token per call showed up in profiles. Not secrets: anything an
attacker must not guess (session ids, requestState) uses `secrets` instead.
"""

from __future__ import annotations

import itertools
import secrets

_PREFIX = secrets.token_hex(4)
_counter = itertools.count(1)


def new_id() -> str:
    return f"{_PREFIX}{next(_counter):x}"
