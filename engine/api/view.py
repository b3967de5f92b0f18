"""The API's view of the tickets: the compacted state topic, the decisions and the SLA
alerts, kept in memory with an index per filter, so a query never scans a topic.

``TicketView`` is plain data fed one record at a time (tested without Kafka);
``ViewFollower`` feeds it from Kafka (``engine.kafka.follower``) and tells listeners (the
chat WebSockets) what is new.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import datetime

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from engine import metrics
from engine.api.board import Board
from engine.api.contract import Decision, SlaState
from engine.contract import (
    AgentPresenceChanged,
    AnyRecord,
    Priority,
    RecordDeadLettered,
    SlaBreached,
    SlaWarning,
    TicketActivity,
    TicketActivityData,
    TicketClassified,
    TicketState,
    TicketStatus,
    TicketUpdated,
    Tier,
    parse_record,
)
from engine.contract.topics import (
    AGENTS_PRESENCE,
    DEAD_LETTERS,
    SLA_ALERTS,
    TICKET_ACTIVITY,
    TICKET_DECISIONS,
    TICKET_STATE,
)
from engine.kafka.follower import Follower
from engine.workers.desk import Desk

log = logging.getLogger(__name__)

DECISIONS_KEPT = 50
FILTERS = ("status", "tier", "priority", "customer", "sla")
# Read whole: the view is rebuilt from them at start. The activity feed is read from its
# end: it only tells open WebSockets what happens from now on.
# The presence topic feeds the desk behind GET /queues (when there is an agents directory).
REBUILT_FROM = (TICKET_STATE, TICKET_DECISIONS, SLA_ALERTS, AGENTS_PRESENCE)


def sla_state(ticket: TicketState, alert: SlaWarning | SlaBreached | None) -> SlaState:
    """The latest SLA alert, unless the customer has been informed since."""
    informed = ticket.last_informed_at
    if alert is None or (informed is not None and informed >= alert.occurred_at):
        return SlaState(state="ok")
    return SlaState(
        state="breached" if isinstance(alert, SlaBreached) else "warning",
        obligation=alert.data.obligation,
        deadline=alert.data.deadline,
        explanation=alert.data.explanation,
    )


class TicketView:
    def __init__(self, desk: Desk | None = None) -> None:
        self.desk = desk
        # Once read to the end: from then on, updates and resolutions are counted in the
        # metrics as they happen (not the history read at start).
        self.live = False
        self.open: Counter[tuple[Tier, Priority, TicketStatus]] = Counter()
        self.sla_states: Counter[tuple[Priority, str]] = Counter()  # open tickets only
        self.waiting: Counter[tuple[Tier, Priority]] = Counter()  # open, nobody has it
        self._tickets: dict[str, TicketState] = {}
        self._decisions: dict[str, deque[Decision]] = {}
        self._alerts: dict[str, SlaWarning | SlaBreached] = {}
        self._keys: dict[str, dict[str, str]] = {}
        self._index: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._counted: dict[str, tuple[TicketState, str]] = {}  # as last counted
        # What the wallboard shows, kept as records arrive (engine/api/board.py).
        self.board = Board()

    def __len__(self) -> int:
        return len(self._tickets)

    def apply(self, record: AnyRecord) -> None:
        match record:
            case TicketUpdated(data=data):
                if self.live:
                    self._measure(self._tickets.get(data.ticket.ticket_id), data.ticket)
                self._tickets[data.ticket.ticket_id] = data.ticket
                self._reindex(data.ticket.ticket_id)
                if self.desk is not None:
                    self.desk.apply_ticket(data.ticket)
            case AgentPresenceChanged(data=data) if self.desk is not None:
                self.desk.apply_presence(data.agent_id, data.presence)
            case TicketClassified(data=data, occurred_at=at):
                kept = self._decisions.setdefault(data.ticket_id, deque(maxlen=DECISIONS_KEPT))
                if all(d.cause_event_id != data.cause_event_id for d in kept):
                    kept.append(Decision(cause_event_id=data.cause_event_id, occurred_at=at,
                                         classification=data.classification))  # fmt: skip
            case RecordDeadLettered(source=source, occurred_at=at):
                self.board.dead_letters.add(metrics.component_of_source(source).value, at)
            case SlaWarning(data=data) | SlaBreached(data=data):
                self._alerts[data.ticket_id] = record
                self._reindex(data.ticket_id)
            case _:
                pass

    def get(self, ticket_id: str) -> TicketState | None:
        return self._tickets.get(ticket_id)

    def decisions(self, ticket_id: str) -> tuple[Decision, ...]:
        return tuple(self._decisions.get(ticket_id, ()))

    def sla(self, ticket: TicketState) -> SlaState:
        return sla_state(ticket, self._alerts.get(ticket.ticket_id))

    def find(self, filters: dict[str, str], limit: int) -> tuple[list[TicketState], int]:
        """Tickets matching every filter (field -> value), most recently updated first,
        at most ``limit``; and how many match in all."""
        if filters:
            sets = sorted((self._index.get(item, set()) for item in filters.items()), key=len)
            ids: Iterable[str] = set.intersection(*sets)
        else:
            ids = self._tickets.keys()
        matching = [self._tickets[ticket_id] for ticket_id in ids]
        newest = heapq.nlargest(limit, matching, key=_updated_at)
        return newest, len(matching)

    def _measure(self, before: TicketState | None, after: TicketState) -> None:
        """Count an update to the customer (on time, or after its breach) and the times to
        first response and to resolution, as they happen."""
        labels = (after.priority, after.channel)
        if before is not None and after.informed_count > before.informed_count:
            late = self.sla(before).state == "breached"
            outcome = metrics.UpdateOutcome.LATE if late else metrics.UpdateOutcome.ON_TIME
            metrics.SLA_UPDATES.labels(after.priority, outcome).inc()
            if before.informed_count == 0 and after.last_informed_at is not None:
                waited = after.last_informed_at - after.opened_at
                metrics.TIME_TO_FIRST_RESPONSE_SECONDS.labels(*labels).observe(
                    max(0.0, waited.total_seconds())
                )
        resolved_now = after.status is TicketStatus.RESOLVED and (
            before is None or before.status is not TicketStatus.RESOLVED
        )
        if resolved_now and after.resolved_at is not None:
            took = after.resolved_at - after.opened_at
            metrics.TIME_TO_RESOLVE_SECONDS.labels(*labels).observe(max(0.0, took.total_seconds()))

    def export_gauges(self) -> None:
        """Open tickets by tier, priority and status, and open tickets warned or breached
        by priority, from the counts kept as records arrive (no scan)."""
        for tier in Tier:
            for priority in Priority:
                for status in TicketStatus:
                    if status is not TicketStatus.RESOLVED:
                        count = self.open[(tier, priority, status)]
                        metrics.OPEN_TICKETS.labels(tier, priority, status).set(count)
        for priority in Priority:
            metrics.SLA_DUE_SOON.labels(priority).set(self.sla_states[(priority, "warning")])
            metrics.SLA_IN_BREACH.labels(priority).set(self.sla_states[(priority, "breached")])

    def export_waiting(self, now: datetime) -> None:
        """Tickets nobody has, by tier and priority, and the oldest one's age by tier (the
        tier workers export the same from their desk; the API does it without them too)."""
        for tier in Tier:
            for priority in Priority:
                metrics.WAITING_TICKETS.labels(tier, priority).set(self.waiting[(tier, priority)])
            oldest = self.board.oldest_waiting(tier)
            age = (now - oldest.opened_at).total_seconds() if oldest is not None else 0.0
            metrics.OLDEST_WAITING_SECONDS.labels(tier).set(max(0.0, age))

    def _count(self, ticket: TicketState, sla: str, sign: int) -> None:
        if ticket.status is TicketStatus.RESOLVED:
            return
        self.open[(ticket.tier, ticket.priority, ticket.status)] += sign
        self.sla_states[(ticket.priority, sla)] += sign
        if ticket.assignee is None:
            self.waiting[(ticket.tier, ticket.priority)] += sign

    def _reindex(self, ticket_id: str) -> None:
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            return  # an alert before its ticket: indexed when the ticket arrives
        counted = self._counted.get(ticket_id)
        if counted is not None:
            self._count(*counted, -1)
        sla = self.sla(ticket)
        keys = {
            "status": ticket.status.value,
            "tier": ticket.tier.value,
            "priority": ticket.priority.value,
            "customer": ticket.customer_id or "",
            "sla": sla.state,
        }
        for item in self._keys.get(ticket_id, {}).items():
            self._index[item].discard(ticket_id)
        for item in keys.items():
            self._index[item].add(ticket_id)
        self._keys[ticket_id] = keys
        self._counted[ticket_id] = (ticket, keys["sla"])
        self._count(ticket, keys["sla"], +1)
        self.board.apply(ticket, sla, first_seen=counted is None)


def _updated_at(ticket: TicketState) -> datetime:
    return ticket.updated_at


class ViewFollower:
    """Follows the topics into a TicketView; calls ``on_ticket`` with every state update
    and ``on_activity`` with every new activity."""

    def __init__(
        self,
        bootstrap: str,
        view: TicketView,
        on_ticket: Callable[[TicketState], None],
        on_activity: Callable[[TicketActivityData], None],
    ) -> None:
        self.view = view
        self._on_ticket = on_ticket
        self._on_activity = on_activity
        self._follower = Follower(
            "view",
            bootstrap,
            REBUILT_FROM,
            self._apply,
            live=(TICKET_ACTIVITY, DEAD_LETTERS),
            max_records=2000,
        )
        self.caught_up = self._follower.caught_up

    async def run(self) -> None:
        """Until cancelled; reconnects while Kafka is away."""
        await self._follower.run()

    def _apply(self, message: ConsumerRecord[bytes, bytes]) -> None:
        if message.value is None:
            return
        try:
            record = parse_record(message.value)
        except ValidationError as error:
            log.warning("view: skipped a record that does not parse: %s", error.errors()[0])
            return
        if self.caught_up.is_set():
            self.view.live = True
        self.view.apply(record)
        # Told even while catching up: a socket may already wait for its ticket (a lookup
        # per record when none does). Activity is read from the end, so it is always live.
        if isinstance(record, TicketUpdated):
            self._on_ticket(record.data.ticket)
        elif isinstance(record, TicketActivity):
            self._on_activity(record.data)
