"""``engine workers``: the tier workers. Every routed ticket is assigned to the best
qualified agent who can take it now; a ticket nobody can take waits, counted, and is
assigned the moment someone can.

- **What it reads**: the compacted ticket state (open tickets, their tier, priority,
  skills, language and assignee) and the agents' presence, from the start, then live
  (``engine.kafka.follower``). Every worker process keeps the whole desk (``desk.Desk``).
- **Who decides**: one worker at a time, the one that holds the lease: partition 0 of the
  single-partition presence topic, in the consumer group ``<app id>-workers``. Another
  worker takes over when the holder stops or its session times out (decision 54).
- **What it writes**: an ``assigned`` activity on the ticket events topic, with the
  explanation and ``if_assignee=''``: the processor, the single writer of each ticket,
  refuses a second assignment of a ticket that has an assignee. The event id is derived
  from the ticket, its state version and the agent, so a decision taken twice on the
  same state (a failover) is one event. A ticket not accepted in time, or left by an
  assignee who went away, is reassigned (``if_assignee`` the one it is taken from,
  ``if_unaccepted``) or given back to the queue (``unassigned``).
- **Escalations**: SLA alerts (``sla.alerts.v1``) and acceptances that lapsed, through the
  escalation matrix (``escalation.py``), become ``escalation.notified`` records on
  ``tickets.escalations.v1``, which the worker also reads back from the start: a step
  already there is never told again (``escalate.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from datetime import datetime

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import (
    ActivityType,
    AgentPresenceChanged,
    AnyRecord,
    Envelope,
    Priority,
    RecordDeadLettered,
    Standing,
    TicketActivity,
    TicketActivityData,
    TicketStatus,
    TicketUpdated,
    Tier,
    parse_record,
    to_json,
)
from engine.contract.escalation import Handover
from engine.contract.identity import event_id
from engine.contract.records import EscalationNotified, SlaBreached, SlaWarning
from engine.contract.topics import (
    AGENTS_PRESENCE,
    DEAD_LETTERS,
    ESCALATIONS,
    SLA_ALERTS,
    TICKET_EVENTS,
    TICKET_STATE,
)
from engine.errors import EngineError, PublishError, describe_validation
from engine.kafka.deadletter import dead_letter, location_of
from engine.kafka.follower import Follower
from engine.kafka.lease import Lease
from engine.kafka.publisher import KafkaPublisher
from engine.outage_log import bootstrap_servers, wait_until_kafka_answers
from engine.process import ServiceStop, configure_logging, run_until_signalled
from engine.settings import Settings
from engine.workers.agents import AgentsDirectory, load_configured
from engine.workers.desk import Decision, Desk, Release
from engine.workers.escalate import Escalations, lapse_cause
from engine.workers.escalation import EscalationPolicy, load_escalation

log = logging.getLogger(__name__)
SOURCE = "engine.workers"
ACTOR = "tier-workers"
# What the workers read from each topic; any other record there is a dead letter.
EXPECTED_KINDS: dict[str, tuple[type[Envelope], ...]] = {
    TICKET_STATE: (TicketUpdated,),
    AGENTS_PRESENCE: (AgentPresenceChanged,),
    SLA_ALERTS: (SlaWarning, SlaBreached),
    ESCALATIONS: (EscalationNotified,),
}


class UnusableRecordError(EngineError):
    """A record of a kind its topic does not hold, or a tombstone where nothing is deleted."""


def load_directory_for(settings: Settings) -> AgentsDirectory:
    if settings.agents_file is None:
        raise EngineError("the tier workers need ENGINE_AGENTS_FILE (an agents directory)")
    return load_configured(settings.agents_file, settings.sla_calendars_file, settings.rules_file)


def load_policy_for(settings: Settings, directory: AgentsDirectory) -> EscalationPolicy:
    """The escalation matrix, checked against the directory it names people from."""
    policy = load_escalation(settings.escalation_file)
    if policy.names_managers and not directory.managers:
        raise EngineError(
            f"{policy.origin} tells the manager, but the agents directory "
            f"{settings.agents_file} lists no managers (add a managers: section)"
        )
    return policy


def parsed(record: ConsumerRecord[bytes, bytes]) -> AnyRecord:
    """The record, of a kind its topic holds. Raises ValidationError for one that does not
    parse, UnusableRecordError for another kind or a tombstone."""
    if record.value is None:
        raise UnusableRecordError("a record without a value (a tombstone)")
    found = parse_record(record.value)
    if not isinstance(found, EXPECTED_KINDS.get(record.topic, object)):
        raise UnusableRecordError(f"a {found.kind} record does not belong on {record.topic}")
    return found


def feed(desk: Desk, record: ConsumerRecord[bytes, bytes]) -> str | None:
    """One record of the state or presence topic into the desk; the ticket's id when the
    record resolved or deleted it. A tombstone deletes its key (both topics are compacted:
    a ticket's state or an agent's presence was deleted). Raises what a record it cannot
    use makes it raise."""
    if record.value is None:
        return _deleted(desk, record)
    match parsed(record):
        case TicketUpdated(data=data):
            desk.apply_ticket(data.ticket)
            if data.ticket.status is TicketStatus.RESOLVED:
                return data.ticket.ticket_id
        case AgentPresenceChanged(data=data):
            desk.apply_presence(data.agent_id, data.presence)
    return None


def _deleted(desk: Desk, record: ConsumerRecord[bytes, bytes]) -> str | None:
    if record.key is None:
        return None
    key: str = record.key.decode(errors="replace")
    if record.topic == AGENTS_PRESENCE:
        desk.forget_presence(key)
        return None
    desk.forget(key)
    return key


def feed_escalations(
    escalations: Escalations, record: ConsumerRecord[bytes, bytes], now: datetime
) -> None:
    """One record of the alerts or escalations topic; raises what a record it cannot use
    makes it raise."""
    match parsed(record):
        case SlaWarning(data=data, event_id=alert_id) | SlaBreached(data=data, event_id=alert_id):
            escalations.record_alert(data, alert_id, now)
        case EscalationNotified(data=told):
            escalations.record_told(told)


def unusable_letter(
    record: ConsumerRecord[bytes, bytes], error: Exception, now: datetime
) -> RecordDeadLettered:
    """The dead letter of a record the workers could not use, and why."""
    if isinstance(error, ValidationError):
        reason = f"not a valid record: {describe_validation(error)}"
    elif isinstance(error, UnusableRecordError):
        reason = str(error)
    else:
        reason = f"processing failed: {error!r}"
    return dead_letter(
        record.value or b"", reason=reason, field=None, origin=record.topic, source=SOURCE,
        now=now, original=location_of(record),
    )  # fmt: skip


def decision_record(decision: Decision, clock: Clock) -> TicketActivity:
    """The activity that carries a decision to the processor; the same decision on the same
    state is the same event."""
    if isinstance(decision, Release):
        identity = f"{decision.ticket_id}:unassigned:{decision.state_version}:{decision.agent_id}"
        data = TicketActivityData(
            ticket_id=decision.ticket_id,
            activity=ActivityType.UNASSIGNED,
            actor=ACTOR,
            note=decision.explanation[0],
            if_assignee=decision.agent_id,
            if_unaccepted=True,
            explanation=decision.explanation,
        )
    else:
        identity = f"{decision.ticket_id}:assigned:{decision.state_version}:{decision.agent_id}"
        handed_over = decision.handover is not Handover.NEW
        data = TicketActivityData(
            ticket_id=decision.ticket_id,
            activity=ActivityType.ASSIGNED,
            actor=ACTOR,
            assignee=decision.agent_id,
            note=decision.explanation[0] if handed_over else None,
            if_assignee=decision.previous or "",
            if_unaccepted=handed_over,
            explanation=decision.explanation,
        )
    return TicketActivity(
        event_id=event_id("ticket.activity", identity),
        occurred_at=clock.now(),
        source=SOURCE,
        data=data,
    )


def export_gauges(desk: Desk, clock: Clock) -> None:
    now = clock.now()
    waiting = desk.waiting()
    for tier in Tier:
        for priority in Priority:
            metrics.WAITING_TICKETS.labels(tier, priority).set(waiting.get((tier, priority), 0))
        oldest = desk.oldest_waiting(tier)
        metrics.OLDEST_WAITING_SECONDS.labels(tier).set(
            (now - oldest).total_seconds() if oldest else 0
        )
    standings = [desk.standing(agent_id) for agent_id in desk.directory.agents]
    for standing in Standing:
        metrics.AGENTS.labels(standing).set(standings.count(standing))


class TierWorkers:
    def __init__(
        self,
        settings: Settings,
        directory: AgentsDirectory,
        policy: EscalationPolicy,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._policy = policy
        self.desk = Desk(directory, clock.now(), policy.acceptance)
        self.escalations = Escalations()
        bootstrap = settings.kafka_bootstrap
        self._changed = asyncio.Event()
        self.follower = Follower(
            "workers", bootstrap, [TICKET_STATE, AGENTS_PRESENCE], self._apply, latest_only=True
        )
        # Alerts and the steps told are history, not latest values: read whole.
        self.alert_follower = Follower(
            "workers-escalations", bootstrap, [SLA_ALERTS, ESCALATIONS], self._apply_escalation
        )
        self.lease = Lease(
            bootstrap,
            f"{settings.app_id}-workers",
            AGENTS_PRESENCE,
            on_change=lambda held: metrics.WORKERS_LEADING.set(1 if held else 0),
        )
        self._publisher = KafkaPublisher(
            bootstrap, settings.kafka_ack_timeout_seconds, client_id="engine-workers"
        )
        # Dead letters of records the workers could not use, by event id, until the lease
        # holder publishes them (once per process: the followers read every record again
        # when they start over, and a letter's id is the same each time).
        self._letters: dict[str, RecordDeadLettered] = {}
        self._lettered: set[str] = set()

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            resolved = feed(self.desk, record)
        except Exception as error:
            self._unusable(record, error)
            return
        if resolved is not None:
            self.escalations.forget(resolved)
        self._changed.set()

    def _apply_escalation(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            feed_escalations(self.escalations, record, self._clock.now())
        except Exception as error:
            self._unusable(record, error)
            return
        self._changed.set()

    def _unusable(self, record: ConsumerRecord[bytes, bytes], error: Exception) -> None:
        """A record that cannot move the desk or the escalations (whatever it made them
        raise): a dead letter, and the reading goes on with the next record."""
        letter = unusable_letter(record, error, self._clock.now())
        log.warning("workers: a record of %s[%d]@%d is a dead letter: %.300s",
                    record.topic, record.partition, record.offset, letter.data.reason)  # fmt: skip
        if letter.event_id not in self._lettered:
            self._letters[letter.event_id] = letter
        self._changed.set()

    @property
    def caught_up(self) -> bool:
        return self.follower.caught_up.is_set() and self.alert_follower.caught_up.is_set()

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] = lambda: None) -> None:
        """Assign until ``stop``; ``ready()`` is called once the desk and the alerts are
        read (what the worker decides by)."""
        tasks = [
            asyncio.create_task(self.follower.run()),
            asyncio.create_task(self.alert_follower.run()),
            asyncio.create_task(self.lease.run()),
        ]
        try:
            await self._assign_until(stop, ready)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._publisher.stop()

    async def _assign_until(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        tick = self._settings.workers_tick_seconds
        next_tick = 0.0
        loop = asyncio.get_running_loop()
        frozen = False
        while not stop.is_set():
            if not frozen and self.caught_up:
                # The desk read at start is long-lived: kept out of the collector's full
                # passes, a decision does not cost more for every ticket that waits
                # (bench/assignment.py).
                self.escalations.keep_open(self.desk.state_of)
                gc.freeze()
                frozen = True
                ready()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(tick, 1.0))
            self._changed.clear()
            now = self._clock.now()
            if loop.time() >= next_tick:
                self.desk.tick(now)
                export_gauges(self.desk, self._clock)
                next_tick = loop.time() + tick
            acceptances = self.desk.take_acceptances()
            if self.lease.held.is_set() and self.caught_up:
                for accepted in acceptances:
                    metrics.TIME_TO_ACCEPT_SECONDS.labels(accepted.priority).observe(
                        accepted.seconds
                    )
                await self._publish(self.desk.decide(now))
                await self._escalate(now)
                await self._publish_letters()

    async def _publish(self, decided: list[Decision]) -> None:
        for decision in decided:
            record = decision_record(decision, self._clock)
            try:
                await self._publisher.publish(
                    TICKET_EVENTS, decision.ticket_id.encode(), to_json(record)
                )
            except PublishError as error:
                # The desk holds an assignment as pending; it lapses and is taken again.
                log.warning("decision on %s not published: %s", decision.ticket_id, error)
                continue
            log.info("%s", "; ".join(decision.explanation))
            if isinstance(decision, Release):
                metrics.REASSIGNMENTS.labels(Handover.GIVEN_BACK).inc()
                continue
            if decision.handover is not Handover.NEW:
                metrics.REASSIGNMENTS.labels(decision.handover).inc()
            metrics.ASSIGNMENTS.labels(decision.tier, decision.priority).inc()
            metrics.TIME_TO_ASSIGN_SECONDS.labels(decision.priority).observe(
                decision.waited.total_seconds()
            )

    async def _publish_letters(self) -> None:
        for letter_id, letter in list(self._letters.items()):
            key = letter.data.payload_sha256.encode()
            try:
                await self._publisher.publish(DEAD_LETTERS, key, to_json(letter))
            except PublishError as error:
                log.warning("dead letter not published: %s", error)
                return  # kept for the next pass
            del self._letters[letter_id]
            self._lettered.add(letter_id)

    async def _escalate(self, now: datetime) -> None:
        causes = [lapse_cause(lapse) for lapse in self.desk.take_lapses()]
        causes += self.escalations.alert_causes(self.desk.state_of, now)
        records = self.escalations.to_tell(causes, self._policy, self.desk.directory, now, SOURCE)
        for record in records:
            told = record.data
            try:
                await self._publisher.publish(ESCALATIONS, told.ticket_id.encode(), to_json(record))
            except PublishError as error:
                # Not recorded as told: an alert is told at the next alert of its
                # obligation, a lapse when the worker reads the ticket again.
                log.warning("escalation %s not published: %s", told.dedup_key, error)
                continue
            self.escalations.record_told(told)
            metrics.ESCALATIONS.labels(told.reason, told.role).inc()
            log.info("%s", "; ".join(told.explanation))


def run_tier_workers(settings: Settings) -> None:
    configure_logging(settings)
    wait_until_kafka_answers(bootstrap_servers(settings.kafka_bootstrap))
    directory = load_directory_for(settings)
    port = metrics.serve_metrics(settings.workers_metrics_port, settings.metrics_host)
    print(
        f"workers: assigning tickets to {len(directory)} agents; "
        f"metrics on http://{settings.metrics_host}:{port}/metrics",
        flush=True,
    )

    policy = load_policy_for(settings, directory)

    async def serve(stop: ServiceStop) -> None:
        await TierWorkers(settings, directory, policy, SystemClock()).run(stop, stop.serving)

    run_until_signalled(serve)
