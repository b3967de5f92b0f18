"""Compressed time for demonstrations and tests: the SLA worker can run its calendars on
a timeline where ``factor`` seconds pass for every real second (3600: an hour a second).

The timeline is anchored at ``origin`` (the same for every worker, so a restarted worker
computes the same deadlines): ``virtual(t) = origin + (t - origin) * factor``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from engine.contract import SlaFacts

DEFAULT_ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeScale:
    factor: float = 1.0
    origin: datetime = DEFAULT_ORIGIN

    def virtual(self, real: datetime) -> datetime:
        if self.factor == 1.0:
            return real
        return self.origin + (real - self.origin) * self.factor

    def facts(self, facts: SlaFacts) -> SlaFacts:
        """The facts with every instant moved onto the timeline."""
        if self.factor == 1.0:
            return facts
        moved = {name: self.virtual(value) for name, value in facts if isinstance(value, datetime)}
        return facts.model_copy(update=moved)

    def real(self, virtual: datetime) -> datetime:
        if self.factor == 1.0:
            return virtual
        return self.origin + (virtual - self.origin) / self.factor


REAL_TIME = TimeScale()
