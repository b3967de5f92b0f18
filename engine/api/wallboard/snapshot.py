"""The wallboard's snapshot: what a desk watches, read from the API's ticket view (its
board, engine/api/board.py) and the gauges this process already holds; never from Kafka.

Each list is sorted when a snapshot is built: a sort of the open P1 tickets and of the
flagged ones, not a scan of every ticket. Snapshots are built at most a few times a second
whatever the number of screens (``WallboardHub`` keeps the last one), so the cost stays
bounded when a storm changes the view thousands of times a second.

Dead letters come from the view, which reads ``deadletter.v1`` live (from its end when the
API starts): the last hour's, by the component that made them.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import Literal

from pydantic import Field

from engine import metrics
from engine.api.view import TicketView
from engine.contract import Channel, Priority, Record, TicketState, Tier, UtcDatetime

LISTED = 25  # rows of each list; the counts say how many there are in all


class WaitingTicket(Record):
    ticket_id: str
    subject: str
    priority: Priority
    opened_at: UtcDatetime
    age_seconds: float


class TierBoard(Record):
    tier: Tier
    open: dict[Priority, int] = Field(description="Open (not resolved) tickets by priority")
    total: int
    waiting: int = Field(description="Open tickets nobody has")
    oldest_waiting: WaitingTicket | None = Field(description="The one nobody has, opened first")


class P1Row(Record):
    ticket_id: str
    subject: str
    tier: Tier
    opened_at: UtcDatetime
    age_seconds: float
    assignee: str | None = Field(description="None: nobody has it")
    sla: Literal["ok", "warning", "breached"]


class SlaRow(Record):
    ticket_id: str
    subject: str
    priority: Priority
    tier: Tier
    state: Literal["warning", "breached"]
    obligation: str | None
    deadline: UtcDatetime | None


class Storm(Record):
    ticket_id: str
    alarm: str = Field(description="device | trap family | affected object")
    occurrences: int
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    flapping: bool
    priority: Priority
    tier: Tier


class LagRow(Record):
    group: str
    topic: str
    records: int


class Pipeline(Record):
    consumer_lag: tuple[LagRow, ...] = Field(description="Largest first; empty until read")
    total_lag: int | None = Field(description="None: not read yet (every 15 s)")
    dead_letters_last_hour: dict[str, int] = Field(
        description="Dead letters made in the last hour, by component (since the API started)"
    )


class Wallboard(Record):
    generated_at: UtcDatetime
    ready: bool = Field(description="False while the view is still read from Kafka")
    tiers: tuple[TierBoard, ...]
    p1: tuple[P1Row, ...] = Field(description="Open P1 tickets, oldest first")
    p1_count: int
    sla: tuple[SlaRow, ...] = Field(description="Overdue first, then by deadline")
    sla_counts: dict[Literal["warning", "breached"], int]
    inflow_last_hour: dict[Channel, int]
    storms: tuple[Storm, ...] = Field(description="Most notifications first")
    pipeline: Pipeline


def _age(now: datetime, since: datetime) -> float:
    return max(0.0, (now - since).total_seconds())


def _tier(view: TicketView, tier: Tier, now: datetime) -> TierBoard:
    open_by_priority = {
        priority: sum(
            count for (t, p, _status), count in view.open.items() if t is tier and p is priority
        )
        for priority in Priority
    }
    # The desk behind GET /queues when there is an agents directory; else the view's own.
    desk = view.desk
    if desk is not None:
        oldest = desk.oldest_waiting_ticket(tier)
        waiting = sum(desk.waiting().get((tier, p), 0) for p in Priority)
    else:
        oldest = view.board.oldest_waiting(tier)
        waiting = view.board.waiting(tier)
    return TierBoard(
        tier=tier,
        open=open_by_priority,
        total=sum(open_by_priority.values()),
        waiting=waiting,
        oldest_waiting=_waiting(oldest, now) if oldest is not None else None,
    )


def _waiting(ticket: TicketState, now: datetime) -> WaitingTicket:
    return WaitingTicket(
        ticket_id=ticket.ticket_id,
        subject=ticket.subject,
        priority=ticket.priority,
        opened_at=ticket.opened_at,
        age_seconds=_age(now, ticket.opened_at),
    )


def _opened(ticket: TicketState) -> tuple[datetime, str]:
    return ticket.opened_at, ticket.ticket_id


def _p1_rows(view: TicketView, now: datetime) -> tuple[P1Row, ...]:
    oldest = heapq.nsmallest(LISTED, view.board.p1.values(), key=_opened)
    return tuple(
        P1Row(
            ticket_id=ticket.ticket_id,
            subject=ticket.subject,
            tier=ticket.tier,
            opened_at=ticket.opened_at,
            age_seconds=_age(now, ticket.opened_at),
            assignee=ticket.assignee,
            sla=view.sla(ticket).state,
        )
        for ticket in oldest
    )


def _sla_rows(view: TicketView) -> tuple[SlaRow, ...]:
    rows = [
        SlaRow(
            ticket_id=ticket.ticket_id,
            subject=ticket.subject,
            priority=ticket.priority,
            tier=ticket.tier,
            state="breached" if sla.state == "breached" else "warning",
            obligation=sla.obligation,
            deadline=sla.deadline,
        )
        for ticket, sla in view.board.flagged.values()
    ]
    return tuple(heapq.nsmallest(LISTED, rows, key=_urgency))


def _urgency(row: SlaRow) -> tuple[int, float, str]:
    deadline = row.deadline.timestamp() if row.deadline is not None else float("inf")
    return (0 if row.state == "breached" else 1), deadline, row.ticket_id


def _storms(view: TicketView) -> tuple[Storm, ...]:
    storms = [
        Storm(
            ticket_id=ticket.ticket_id,
            alarm=ticket.alarm.key,
            occurrences=ticket.alarm.occurrences,
            first_seen=ticket.alarm.first_seen,
            last_seen=ticket.alarm.last_seen,
            flapping=ticket.alarm.flapping,
            priority=ticket.priority,
            tier=ticket.tier,
        )
        for ticket in view.board.storms.values()
        if ticket.alarm is not None
    ]
    return tuple(heapq.nlargest(LISTED, storms, key=lambda s: (s.occurrences, s.ticket_id)))


def _pipeline(view: TicketView, now: datetime) -> Pipeline:
    """The consumer lag as this process last read it (engine/api/monitoring.py), and the
    dead letters of the last hour."""
    rows = [
        LagRow(
            group=sample.labels["group"], topic=sample.labels["topic"], records=int(sample.value)
        )
        for family in metrics.CONSUMER_LAG.collect()
        for sample in family.samples
    ]
    rows.sort(key=lambda row: (-row.records, row.group, row.topic))
    return Pipeline(
        consumer_lag=tuple(rows),
        total_lag=sum(row.records for row in rows) if rows else None,
        dead_letters_last_hour=dict(view.board.dead_letters.totals(now)),
    )


def snapshot(view: TicketView, now: datetime, ready: bool) -> Wallboard:
    counts = {"warning": 0, "breached": 0}
    for _ticket, sla in view.board.flagged.values():
        counts[sla.state] += 1
    return Wallboard(
        generated_at=now,
        ready=ready,
        tiers=tuple(_tier(view, tier, now) for tier in Tier),
        p1=_p1_rows(view, now),
        p1_count=len(view.board.p1),
        sla=_sla_rows(view),
        sla_counts={"warning": counts["warning"], "breached": counts["breached"]},
        inflow_last_hour=view.board.inflow.last_hour(now),
        storms=_storms(view),
        pipeline=_pipeline(view, now),
    )
