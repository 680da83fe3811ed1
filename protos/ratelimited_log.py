"""A logger wrapper that writes at most one line per interval and says how many it held back.

Bad requests are the caller's problem, and a hostile caller can send thousands a second: a
line (worse, a traceback) per bad request turns the log into the attack's amplifier (issue 10:
1.5 MB of log from 2,000 requests). Every place that logs a refused request logs through
``BAD_REQUESTS``; the count of refusals lives in the metrics, not the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog", "BAD_REQUESTS"]


class RateLimitedLog:
    """Log through ``logger`` at most once every ``interval_s`` seconds (thread-safe)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._next_s = float("-inf")
        self._held = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: object) -> bool:
        """Log ``message % args`` at WARNING unless one was logged less than interval ago.

        Returns whether it was written. A written line says how many were held back since
        the last one.
        """
        now_s = self._clock()
        with self._lock:
            if now_s < self._next_s:
                self._held += 1
                return False
            held, self._held = self._held, 0
            self._next_s = now_s + self._interval_s
        if held:
            message += " (%d more like it in the last %.0f s not logged)"
            args = (*args, held, self._interval_s)
        self._logger.warning(message, *args)
        return True


BAD_REQUESTS = RateLimitedLog(logging.getLogger("runnerfleet.bad_requests"))
