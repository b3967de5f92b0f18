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
  same state (a failover) is one event.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import (
    ActivityType,
    AgentPresenceChanged,
    Priority,
    Standing,
    TicketActivity,
    TicketActivityData,
    TicketUpdated,
    Tier,
    parse_record,
    to_json,
)
from engine.contract.identity import event_id
from engine.contract.topics import AGENTS_PRESENCE, TICKET_EVENTS, TICKET_STATE
from engine.errors import EngineError, PublishError
from engine.kafka.follower import Follower
from engine.kafka.lease import Lease
from engine.kafka.publisher import KafkaPublisher
from engine.process import configure_logging, run_until_signalled
from engine.settings import Settings
from engine.workers.agents import AgentsDirectory, load_configured
from engine.workers.desk import Assignment, Desk

log = logging.getLogger(__name__)
SOURCE = "engine.workers"
ACTOR = "tier-workers"


def load_directory_for(settings: Settings) -> AgentsDirectory:
    if settings.agents_file is None:
        raise EngineError("the tier workers need ENGINE_AGENTS_FILE (an agents directory)")
    return load_configured(settings.agents_file, settings.sla_calendars_file, settings.rules_file)


def feed(desk: Desk, record: ConsumerRecord[bytes, bytes]) -> None:
    """One record of the state or presence topic into the desk; anything else is skipped
    (the topics' producers validate what they write)."""
    if record.value is None:
        return
    try:
        parsed = parse_record(record.value)
    except ValidationError as error:
        log.warning("skipped a record of %s@%d: %s", record.topic, record.offset, error)
        return
    match parsed:
        case TicketUpdated(data=data):
            desk.apply_ticket(data.ticket)
        case AgentPresenceChanged(data=data):
            desk.apply_presence(data.agent_id, data.presence)


def assignment_record(assignment: Assignment, clock: Clock) -> TicketActivity:
    return TicketActivity(
        event_id=event_id(
            "ticket.activity",
            f"{assignment.ticket_id}:assigned:{assignment.state_version}:{assignment.agent_id}",
        ),
        occurred_at=clock.now(),
        source=SOURCE,
        data=TicketActivityData(
            ticket_id=assignment.ticket_id,
            activity=ActivityType.ASSIGNED,
            actor=ACTOR,
            assignee=assignment.agent_id,
            if_assignee="",
            explanation=assignment.explanation,
        ),
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
    def __init__(self, settings: Settings, directory: AgentsDirectory, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self.desk = Desk(directory, clock.now())
        bootstrap = settings.kafka_bootstrap
        self._changed = asyncio.Event()
        self.follower = Follower(
            "workers", bootstrap, [TICKET_STATE, AGENTS_PRESENCE], self._apply, latest_only=True
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

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        feed(self.desk, record)
        self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self.follower.run()), asyncio.create_task(self.lease.run())]
        try:
            await self._assign_until(stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._publisher.stop()

    async def _assign_until(self, stop: asyncio.Event) -> None:
        tick = self._settings.workers_tick_seconds
        next_tick = 0.0
        loop = asyncio.get_running_loop()
        frozen = False
        while not stop.is_set():
            if not frozen and self.follower.caught_up.is_set():
                # The desk read at start is long-lived: kept out of the collector's full
                # passes, a decision does not cost more for every ticket that waits
                # (bench/assignment.py).
                gc.freeze()
                frozen = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(tick, 1.0))
            self._changed.clear()
            now = self._clock.now()
            if loop.time() >= next_tick:
                self.desk.tick(now)
                export_gauges(self.desk, self._clock)
                next_tick = loop.time() + tick
            if self.lease.held.is_set() and self.follower.caught_up.is_set():
                await self._publish(self.desk.decide(now))

    async def _publish(self, decided: list[Assignment]) -> None:
        for assignment in decided:
            record = assignment_record(assignment, self._clock)
            try:
                await self._publisher.publish(
                    TICKET_EVENTS, assignment.ticket_id.encode(), to_json(record)
                )
            except PublishError as error:
                # The desk holds the decision as pending; it lapses and is taken again.
                log.warning("assignment of %s not published: %s", assignment.ticket_id, error)
                continue
            metrics.ASSIGNMENTS.labels(assignment.tier, assignment.priority).inc()
            metrics.TIME_TO_ASSIGN_SECONDS.labels(assignment.priority).observe(
                assignment.waited.total_seconds()
            )
            log.info("%s", "; ".join(assignment.explanation))


def run_tier_workers(settings: Settings) -> None:
    configure_logging(settings)
    directory = load_directory_for(settings)
    port = metrics.serve_metrics(settings.workers_metrics_port, settings.metrics_host)
    print(
        f"workers: assigning tickets to {len(directory)} agents; "
        f"metrics on http://{settings.metrics_host}:{port}/metrics",
        flush=True,
    )

    async def serve(stop: asyncio.Event) -> None:
        await TierWorkers(settings, directory, SystemClock()).run(stop)

    run_until_signalled(serve)
