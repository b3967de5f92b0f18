"""Per-sender rate limit: a sender over the limit is told to retry later (4xx), so a
storm is slowed down without losing a single mail. The SMTP ingestor keys it by the
client's address and the envelope sender, and takes it for mails it accepts."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from engine.clock import Clock

MAX_TRACKED_SENDERS = 100_000


class SenderRateLimit:
    """At most ``limit`` mails per sender within any ``window``."""

    def __init__(self, limit: int, window: timedelta, clock: Clock) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._seen: dict[str, deque[datetime]] = {}

    def allow(self, sender: str) -> bool:
        now = self._clock.now()
        horizon = now - self._window
        key = sender.strip().lower()
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self._limit:
            return False
        times.append(now)
        if len(self._seen) > MAX_TRACKED_SENDERS:
            self._forget_idle(horizon)
        return True

    def give_back(self, sender: str) -> None:
        """Return the latest ``allow`` of this sender: its mail was not accepted after all."""
        times = self._seen.get(sender.strip().lower())
        if times:
            times.pop()

    def _forget_idle(self, horizon: datetime) -> None:
        for sender in [s for s, times in self._seen.items() if not times or times[-1] <= horizon]:
            del self._seen[sender]
