"""Waiting before trying again: exponential backoff with jitter, the one policy of every
retry in the engine (decision 7).

``Backoff`` says how long the pause before a retry is; ``Attempts`` counts the failures of
a loop that keeps going (a follower reconnecting, a consumer loop re-reading a batch) and
forgets them once it succeeds. The random draw is passed in, so tests choose it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Draw = Callable[[], float]
"""A number in [0, 1), as ``random.random`` gives."""


@dataclass(frozen=True)
class Backoff:
    """Pauses of ``first_seconds``, then ``factor`` times the previous, up to
    ``max_seconds``; each shortened by a random share of at most ``jitter``, so processes
    that failed together do not retry together. A pause therefore lies between
    ``(1 - jitter)`` times its ceiling and the ceiling itself."""

    first_seconds: float = 1.0
    factor: float = 2.0
    max_seconds: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.first_seconds <= self.max_seconds and self.factor >= 1):
            raise ValueError(f"not a growing backoff: {self}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a share, between 0 and 1: {self.jitter}")

    def ceiling(self, retry: int) -> float:
        """The longest pause before retry number ``retry`` (1 for the first)."""
        if retry < 1:
            raise ValueError(f"retries count from 1, not {retry}")
        pause = self.first_seconds
        for _ in range(retry - 1):  # no float overflow however long the outage
            pause *= self.factor
            if pause >= self.max_seconds:
                return self.max_seconds
        return min(pause, self.max_seconds)

    def pause(self, retry: int, draw: Draw = random.random) -> float:
        """The pause before retry number ``retry``, jitter applied."""
        return self.ceiling(retry) * (1 - self.jitter * draw())


class Attempts:
    """The consecutive failures of a loop that retries: each earns the next pause."""

    def __init__(self, backoff: Backoff, draw: Draw = random.random) -> None:
        self.backoff = backoff
        self.failures = 0
        self._draw = draw

    def failed(self) -> float:
        """Count a failure; the pause to wait before trying again."""
        self.failures += 1
        return self.backoff.pause(self.failures, self._draw)

    def succeeded(self) -> None:
        """The next failure starts from the first pause again."""
        self.failures = 0
