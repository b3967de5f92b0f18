"""The escalation matrix (``ENGINE_ESCALATION_FILE``; built in: ``escalation.yaml`` beside
this module): how long an assignee has to accept a ticket, and who is told, per priority,
when a ticket is not accepted in time, when its update falls due soon (the SLA warning),
when the update was missed (the breach) and missed again (a repeated breach). Validated as a
whole like a rule file (``engine escalation check FILE``). Pure.

```yaml
acceptance:            # then reassigned to the next best agent, and not_accepted told
  P1: 15 minutes       # N seconds | minutes | hours, or N business hours, or
  P3: 4 business hours # next business day (in the assignee's working-hours calendar)
matrix:
  P1:
    sla_breach: [assignee, team_lead, manager]   # told in this order, one record each
```

Roles: ``assignee``; ``team_lead`` (the assignee's lead; with no assignee, the leads of the
ticket's tier); ``next_tier_on_call`` (who is on call now in the tier above, L3's own for
L3); ``manager`` (the support managers of the agents directory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engine.contract import Priority, Tier
from engine.contract.escalation import EscalationReason, EscalationRole
from engine.documents import Problem, validated_document
from engine.errors import EngineError
from engine.sla.calendars import ZonedCalendar

BUILT_IN = Path(__file__).with_name("escalation.yaml")
_WALL = re.compile(r"^(\d+) (second|minute|hour)s?$")
_BUSINESS = re.compile(r"^(\d+) business hours?$")
NEXT_BUSINESS_DAY = "next business day"
_UNIT = {"second": 1, "minute": 60, "hour": 3600}


class EscalationFileError(EngineError):
    """The escalation matrix is not valid; the message names file, line and path."""


@dataclass(frozen=True)
class AcceptanceTime:
    """How long an assignee has to accept: wall-clock time, open time of their calendar,
    or until the close of the next business day."""

    text: str
    wall: timedelta | None = None
    business: timedelta | None = None

    def deadline(self, assigned_at: datetime, hours: ZonedCalendar) -> datetime:
        if self.wall is not None:
            return assigned_at + self.wall
        if self.business is not None:
            return hours.add_open_time(assigned_at, self.business)
        return next_business_day_close(assigned_at, hours)


def next_business_day_close(at: datetime, hours: ZonedCalendar) -> datetime:
    """The close of the first open day that begins after ``at``."""
    days = hours.intervals_from(at)
    begin, end = next(days)
    if begin > at:
        return end
    day = hours.local(begin).date()
    for begin, end in days:
        if hours.local(begin).date() != day:
            return end
    raise AssertionError("intervals_from never ends without raising")


def parse_acceptance(text: str) -> AcceptanceTime:
    """``15 minutes``, ``1 hour``, ``30 seconds``, ``4 business hours``, ``next business
    day``; raises ValueError naming what is accepted."""
    words = " ".join(text.lower().split())
    if wall := _WALL.match(words):
        return AcceptanceTime(text, wall=timedelta(seconds=int(wall[1]) * _UNIT[wall[2]]))
    if business := _BUSINESS.match(words):
        return AcceptanceTime(text, business=timedelta(hours=int(business[1])))
    if words == NEXT_BUSINESS_DAY:
        return AcceptanceTime(text)
    raise ValueError(
        f"{text!r}: write N seconds, N minutes, N hours, N business hours or next business day"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixRow(_Strict):
    sla_warning: tuple[EscalationRole, ...] = ()
    sla_breach: tuple[EscalationRole, ...] = ()
    sla_repeated_breach: tuple[EscalationRole, ...] = ()
    not_accepted: tuple[EscalationRole, ...] = ()

    def roles(self, reason: EscalationReason) -> tuple[EscalationRole, ...]:
        roles: tuple[EscalationRole, ...] = getattr(self, reason.value)
        return roles


def _valid_acceptance(text: str) -> str:
    parse_acceptance(text)
    return text


AcceptanceText = Annotated[str, AfterValidator(_valid_acceptance)]


class EscalationFile(_Strict):
    acceptance: dict[Priority, AcceptanceText] = Field(description="Per priority: time to accept")
    matrix: dict[Priority, MatrixRow]


def matrix_problems(parsed: EscalationFile) -> list[Problem]:
    problems: list[Problem] = []
    for section in ("acceptance", "matrix"):
        given = getattr(parsed, section)
        missing = [p.value for p in Priority if p not in given]
        if missing:
            problems.append(((section,), f"no entry for {', '.join(missing)}"))
    for priority, row in parsed.matrix.items():
        for reason in EscalationReason:
            roles = row.roles(reason)
            if len(set(roles)) != len(roles):
                problems.append((("matrix", priority.value, reason.value), "a role is named twice"))
    return problems


@dataclass(frozen=True)
class EscalationPolicy:
    origin: str
    acceptance: dict[Priority, AcceptanceTime]
    matrix: dict[Priority, MatrixRow]

    def roles(self, priority: Priority, reason: EscalationReason) -> tuple[EscalationRole, ...]:
        return self.matrix[priority].roles(reason)

    @property
    def names_managers(self) -> bool:
        return any(
            EscalationRole.MANAGER in row.roles(reason)
            for row in self.matrix.values()
            for reason in EscalationReason
        )


def parse_escalation(text: str, origin: str) -> EscalationPolicy:
    parsed = validated_document(
        text, origin, EscalationFile, matrix_problems, EscalationFileError, "escalation matrix"
    )
    return EscalationPolicy(
        origin=origin,
        acceptance={p: parse_acceptance(t) for p, t in parsed.acceptance.items()},
        matrix=dict(parsed.matrix),
    )


def load_escalation(path: Path | None) -> EscalationPolicy:
    source = path or BUILT_IN
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        problem = f"{source}: cannot read the escalation matrix: {error}"
        raise EscalationFileError(problem) from error
    return parse_escalation(text, str(source))


def reason_of_alert(repeat: int) -> EscalationReason:
    """An SLA alert's repeat number (0 warning, 1 breach, 2... again) as a matrix column."""
    if repeat == 0:
        return EscalationReason.SLA_WARNING
    if repeat == 1:
        return EscalationReason.SLA_BREACH
    return EscalationReason.SLA_REPEATED_BREACH


def next_tier(tier: Tier) -> Tier:
    order = (Tier.L1, Tier.L2, Tier.L3)
    return order[min(order.index(tier) + 1, len(order) - 1)]
