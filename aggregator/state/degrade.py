"""A shared store that is down is logged once per interval and key, not once per call."""

from __future__ import annotations

import logging
import time

INTERVAL = 30.0
_last: dict[str, float] = {}


def warn_degraded(logger: logging.Logger, key: str, message: str, *args: object) -> None:
    now = time.monotonic()
    if now - _last.get(key, -INTERVAL) >= INTERVAL:
        _last[key] = now
        logger.warning(message, *args)
