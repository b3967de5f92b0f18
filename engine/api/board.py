"""What the wallboard shows, kept as the view's records arrive, so that a snapshot reads a
few small structures instead of scanning every ticket. Plain data, fed by ``TicketView``.

- the open P1 tickets, and the open tickets whose customer update is due soon (warning)
  or overdue (breached);
- per tier, the open tickets nobody has, in a heap by opening time (the oldest first;
  entries of tickets taken or resolved since are dropped when they reach the top);
- the tickets opened per channel over the last hour, in minute buckets;
- the dead letters of the last hour, by the component that made them (read live from
  ``deadletter.v1``: the API does not see the other processes' counters);
- the alarms in a storm: an SNMP ticket whose alarm is raised and has had many
  notifications, or flaps.

``listeners`` are called after every change (the wallboard's live stream waits on them).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from engine.api.contract import SlaState
from engine.contract import Channel, Priority, TicketState, TicketStatus, Tier

INFLOW_WINDOW = timedelta(hours=1)
INFLOW_BUCKET_SECONDS = 60
# An alarm still raised after this many notifications is a storm on the wallboard.
STORM_OCCURRENCES = 10
_V = TypeVar("_V")
_K = TypeVar("_K")


def _minute(at: datetime) -> int:
    return int(at.timestamp()) // INFLOW_BUCKET_SECONDS


class HourCounts(Generic[_K]):
    """Events per key, in minute buckets of the last hour."""

    def __init__(self) -> None:
        self._buckets: dict[int, Counter[_K]] = {}
        self._newest = 0

    def add(self, key: _K, at: datetime) -> None:
        minute = _minute(at)
        self._newest = max(self._newest, minute)
        if minute <= self._newest - self._window:
            return  # read from the history at start: older than the window already
        self._buckets.setdefault(minute, Counter())[key] += 1
        if len(self._buckets) > 2 * self._window:
            self._prune(self._newest)

    def totals(self, now: datetime) -> Counter[_K]:
        self._prune(_minute(now))
        totals: Counter[_K] = Counter()
        for bucket in self._buckets.values():
            totals.update(bucket)
        return totals

    @property
    def _window(self) -> int:
        return int(INFLOW_WINDOW.total_seconds()) // INFLOW_BUCKET_SECONDS

    def _prune(self, minute: int) -> None:
        for old in [m for m in self._buckets if m <= minute - self._window]:
            del self._buckets[old]


class Inflow(HourCounts[Channel]):
    """Tickets opened per channel over the last hour."""

    def last_hour(self, now: datetime) -> dict[Channel, int]:
        totals = self.totals(now)
        return {channel: totals[channel] for channel in Channel}


def is_storm(ticket: TicketState) -> bool:
    alarm = ticket.alarm
    return (
        alarm is not None
        and not alarm.cleared
        and (alarm.occurrences >= STORM_OCCURRENCES or alarm.flapping)
    )


class Board:
    def __init__(self) -> None:
        self.p1: dict[str, TicketState] = {}  # open P1 tickets
        self.flagged: dict[str, tuple[TicketState, SlaState]] = {}  # open, warning or breached
        self.storms: dict[str, TicketState] = {}
        self.inflow = Inflow()
        self.dead_letters: HourCounts[str] = HourCounts()  # by the component that made them
        self.listeners: list[Callable[[], None]] = []
        self._waiting: dict[str, TicketState] = {}  # open, nobody has it
        self._waiting_count: Counter[Tier] = Counter()
        self._waiting_heaps: dict[Tier, list[tuple[datetime, str]]] = {tier: [] for tier in Tier}

    def apply(self, ticket: TicketState, sla: SlaState, first_seen: bool) -> None:
        """A ticket's new state (or a new SLA state): ``first_seen`` when the view had not
        seen the ticket before."""
        ticket_id = ticket.ticket_id
        is_open = ticket.status is not TicketStatus.RESOLVED
        if first_seen:
            self.inflow.add(ticket.channel, ticket.opened_at)
        _keep(self.p1, ticket_id, ticket, is_open and ticket.priority is Priority.P1)
        _keep(self.flagged, ticket_id, (ticket, sla), is_open and sla.state != "ok")
        _keep(self.storms, ticket_id, ticket, is_open and is_storm(ticket))
        self._wait(ticket, is_open and ticket.assignee is None)
        for listener in self.listeners:
            listener()

    def _wait(self, ticket: TicketState, waits: bool) -> None:
        before = self._waiting.pop(ticket.ticket_id, None)
        if before is not None:
            self._waiting_count[before.tier] -= 1
        if not waits:
            return
        self._waiting[ticket.ticket_id] = ticket
        self._waiting_count[ticket.tier] += 1
        if before is None or before.tier is not ticket.tier:
            heap = self._waiting_heaps[ticket.tier]
            heapq.heappush(heap, (ticket.opened_at, ticket.ticket_id))
            if len(heap) > 2 * self._waiting_count[ticket.tier] + 64:
                self._compact(ticket.tier)

    def _compact(self, tier: Tier) -> None:
        """Drop the entries of tickets no longer waiting on this tier (amortised: only when
        they outnumber the live ones)."""
        live = {(t.opened_at, t.ticket_id) for t in self._waiting.values() if t.tier is tier}
        self._waiting_heaps[tier] = sorted(live)

    def waiting(self, tier: Tier) -> int:
        """Open tickets of the tier nobody has."""
        return self._waiting_count[tier]

    def oldest_waiting(self, tier: Tier) -> TicketState | None:
        """The open ticket of the tier nobody has, opened first."""
        heap = self._waiting_heaps[tier]
        while heap:
            _, ticket_id = heap[0]
            ticket = self._waiting.get(ticket_id)
            if ticket is not None and ticket.tier is tier:
                return ticket
            heapq.heappop(heap)  # taken, resolved or moved to another tier since
        return None


def _keep(kept: dict[str, _V], key: str, value: _V, wanted: bool) -> None:
    if wanted:
        kept[key] = value
    else:
        kept.pop(key, None)
