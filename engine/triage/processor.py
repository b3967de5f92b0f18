"""The triage processor: a faust-streaming agent over the ticket events topic.

For each event: read the ticket's state from the ``tickets`` table (whose changelog is the
public, compacted ``tickets.state.v1``), triage it, publish the decision, the routed ticket
and the new state (awaited like any output), and keep the state in the table.
Concurrency is 1 (faust can commit past an in-flight message otherwise). Events are taken
in small batches, triaged in order, and the batch's offsets are acknowledged only once
Kafka acknowledged all of its outputs: effects first, then the commit, so a crash replays
(and ticket ids deduplicate) rather than loses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import (
    TicketState,
    TicketUpdated,
    parse_incoming,
    parse_record,
    record_location,
    to_json,
)
from engine.contract.customers import EMPTY_DIRECTORY, CustomerDirectory, load_directory
from engine.contract.topics import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTERS,
    RULES_CONFIG,
    TICKET_EVENTS,
    TICKET_STATE,
)
from engine.entitlements.follower import BalancesFollower
from engine.errors import field_path
from engine.kafka.deadletter import dead_letter
from engine.kafka.faust_app import (
    StallWatch,
    StreamRecord,
    changelog_topic,
    engine_app,
    handle_batches,
    output_producer,
    raw_topic,
    run_from_start,
    run_worker,
)
from engine.kafka.table_store import changelogged_table, keep_acknowledged, stage
from engine.kafka.watchdog import (
    STALL_CHECK_SECONDS,
    IdleClock,
)
from engine.metrics import ProcessorOutcome
from engine.process import configure_logging
from engine.rules.ruleset import RuleSet, load_ruleset
from engine.settings import Settings
from engine.triage.publications import publications, state_record
from engine.triage.rules_feed import RulesFollower
from engine.triage.triage import suppression_reason, triage

log = logging.getLogger(__name__)
SOURCE = "engine.processor"
# How long triage waits for the published rule set and the balances (both read from the
# process start on) before it starts with what it has.
RULES_CATCH_UP_SECONDS = 30.0


@dataclass(frozen=True)
class _StateToSend:
    """A ticket's new state record, staged in the table at once and sent to its changelog
    only after the batch's other outputs were acknowledged (``acknowledged`` completes
    with that send)."""

    key: bytes
    value: bytes
    acknowledged: asyncio.Future[Any]


@dataclass(frozen=True)
class _Processed:
    outcome: ProcessorOutcome
    sends: Sequence[Awaitable[Any]] = ()
    routed: tuple[TicketState, datetime] | None = None
    state: _StateToSend | None = None


class Processor:
    """Wires the faust app: topics, table and the triage agent."""

    def __init__(
        self,
        settings: Settings,
        ruleset: RuleSet,
        clock: Clock,
        customers: CustomerDirectory = EMPTY_DIRECTORY,
    ) -> None:
        self.settings = settings
        self.ruleset = ruleset
        self.customers = customers
        self.clock = clock
        self.app = engine_app(settings, settings.app_id, "processor")
        self.events = raw_topic(self.app, TICKET_EVENTS, settings.partitions)
        self.tickets = changelogged_table(
            self.app,
            settings.processor_store,
            "tickets",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            changelog_topic=changelog_topic(self.app, TICKET_STATE, settings.partitions),
            # State records are partitioned by the ticket id (the producer's key hash), like
            # every ticket topic, not by the partition of whichever event is current.
            use_partitioner=True,
        )
        # Dead letters keep their input whole: the largest record the processor sends.
        self._outputs = output_producer(self.app, settings, DEAD_LETTER_MAX_BYTES + 64 * 1024)
        # Read while the consumer group is joined and the table recovered, not after it.
        self.rules = RulesFollower(settings.kafka_bootstrap, self._switch_rules)
        run_from_start(self.app, self.rules.run)
        self.balances = BalancesFollower(settings.kafka_bootstrap)
        run_from_start(self.app, self.balances.run)
        self.app.agent(self.events, name="triage", concurrency=1)(self._triage_agent)
        # mode types handlers as plain functions; a bound method is what it calls.
        self.app.on_partitions_assigned.connect(cast(Any, self._on_assigned))
        self._idle = IdleClock()  # started once triage may start
        self.app.timer(STALL_CHECK_SECONDS)(
            StallWatch(self.app, TICKET_EVENTS, self._idle, "processor").check
        )
        self.tickets.on_recover(self._recovered)

    async def _recovered(self) -> None:
        """Restoring the table is not a stall: however long it took (a first start on a
        long changelog), the stall clock starts once it is done."""
        if self._idle.started:
            self._idle.progressed()

    async def _on_assigned(self, sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # faust sends the assigned partitions as the first positional argument.
        assigned = args[0] if args else kwargs.get("assigned", ())
        owned = sum(1 for tp in assigned if tp.topic == TICKET_EVENTS)
        metrics.ASSIGNED_PARTITIONS.set(owned)

    def _switch_rules(self, ruleset: RuleSet) -> None:
        if ruleset.fingerprint == self.ruleset.fingerprint:
            return
        log.warning("rules: switching from %s to %s", self.ruleset.fingerprint, ruleset.fingerprint)
        self.ruleset = ruleset
        metrics.RULESET_SWITCHES.inc()
        metrics.announce_build(ruleset.version)

    async def _triage_agent(self, stream: Any) -> None:
        await self._wait_for_followers()
        self._idle.progressed()
        await handle_batches(stream, self._handle_records, "triage", contiguous=True)

    async def _handle_records(self, records: Sequence[StreamRecord]) -> None:
        await self.handle_batch([record.value for record in records])

    async def _wait_for_followers(self) -> None:
        """Until the published rule set and the balances are read, within one deadline."""
        try:
            async with asyncio.timeout(RULES_CATCH_UP_SECONDS):
                await self.rules.caught_up.wait()
                await self.balances.caught_up.wait()
        except TimeoutError:
            pass
        if not self.rules.caught_up.is_set():
            log.error(
                "rules: %s not read within %ss; triaging with %s until it is",
                RULES_CONFIG, RULES_CATCH_UP_SECONDS, self.ruleset.fingerprint,
            )  # fmt: skip
        if not self.balances.caught_up.is_set():
            log.error("entitlements: balances not read; routing without them until they are")

    async def handle_batch(self, values: Sequence[bytes | None]) -> None:
        """Triage each record in order, then wait until Kafka acknowledged every output,
        then send the tickets' new states and wait for those. faust acknowledges the
        batch's offsets only after this returns.

        A state marks its event applied (``recent_event_ids``): a replay skips such an
        event. Sent with the outputs, a state acknowledged before a routed record that
        never was (the process killed in between) would leave that ticket unrouted for
        good; sent after them, a kill in between only makes the replay publish the
        outputs again, with the same event ids."""
        self._idle.progressed()
        ruleset = self.ruleset  # one rule set decides the whole batch
        processed = [await self._process(value, ruleset) for value in values]
        await asyncio.gather(*(future for result in processed for future in result.sends))
        states = [result.state for result in processed if result.state is not None]
        for state in states:
            sent = await self._outputs.send(TICKET_STATE, state.key, state.value)
            chain(sent, state.acknowledged)
        await asyncio.gather(*(state.acknowledged for state in states))
        keep_acknowledged(self.tickets)  # the states' rows, with their changelog offsets
        acked_at = self.clock.now()
        for result in processed:
            metrics.EVENTS_PROCESSED.labels(result.outcome).inc()
            if result.routed is not None:
                ticket, occurred_at = result.routed
                metrics.TICKETS_ROUTED.labels(ticket.tier, ticket.priority).inc()
                for special in ticket.special_routes:
                    metrics.SPECIAL_ROUTES.labels(special).inc()
                latency = (acked_at - occurred_at).total_seconds()
                metrics.INGEST_TO_ROUTED_SECONDS.observe(max(0.0, latency))

    async def _process(self, value: bytes | None, ruleset: RuleSet) -> _Processed:
        if value is None:
            # Ticket events are never deleted: a tombstone is somebody's mistake.
            return await self._dead_letter(b"", "a record without a value (a tombstone)", None)
        try:
            return await self._triage(value, ruleset)
        except (KafkaError, TimeoutError):
            raise  # Kafka trouble: crash, be restarted, reprocess from the last commit
        except Exception as error:
            log.exception("processing a record of %s failed", TICKET_EVENTS)
            return await self._dead_letter(value, f"processing failed: {error!r}", None)

    async def _triage(self, value: bytes, ruleset: RuleSet) -> _Processed:
        try:
            incoming = parse_incoming(value)
        except ValidationError as error:
            first = error.errors()[0]
            field = field_path(record_location(first["loc"])) or None
            reason = f"not a valid ticket event: {first['msg']}"
            return await self._dead_letter(value, reason, field)
        suppressed = suppression_reason(incoming)
        if suppressed is not None:
            log.info("no ticket for %s: %s", incoming.event_id, suppressed)
            return _Processed(ProcessorOutcome.SUPPRESSED)
        now = self.clock.now()
        stored = self.tickets.get(incoming.data.ticket_id.encode())
        previous = _ticket_of(stored) if stored is not None else None
        outcome = triage(previous, incoming, ruleset, now, self.customers, self.balances.hours_left)
        if outcome.duplicate:
            return _Processed(ProcessorOutcome.DUPLICATE)
        if outcome.redirected is not None:
            redirected = outcome.redirected
            log.info(
                "mail %s opens %s: %s", incoming.event_id, redirected.data.ticket_id,
                redirected.data.linked_to.reason if redirected.data.linked_to else "",
            )  # fmt: skip
            key = redirected.data.ticket_id.encode()
            sent = await self._outputs.send(TICKET_EVENTS, key, to_json(redirected))
            return _Processed(ProcessorOutcome.LINKED, [sent])
        if outcome.refused is not None or outcome.ticket is None:
            reason = f"activity refused: {outcome.refused}"
            return await self._dead_letter(
                value, reason, "data.activity", outcome=ProcessorOutcome.REFUSED
            )
        sends = [
            await self._outputs.send(p.topic, p.key.encode(), to_json(p.record))
            for p in publications(outcome, incoming, now, SOURCE)
        ]
        ticket = outcome.ticket
        key = ticket.ticket_id.encode()
        state = to_json(state_record(ticket, incoming.event_id, now, SOURCE))
        # The table's row is staged at once (the batch's next events of the ticket read
        # it) without a second changelog write: the state record itself is its changelog
        # record, sent by handle_batch after the other outputs, and the row is kept on
        # disk with its offset once acknowledged (keep_acknowledged).
        pending = _StateToSend(key, state, asyncio.get_running_loop().create_future())
        stage(self.tickets, key, state, pending.acknowledged)
        if not outcome.routed:
            return _Processed(ProcessorOutcome.PROCESSED, sends, state=pending)
        log.info(
            "ticket %s routed to %s as %s/%s",
            ticket.ticket_id, ticket.tier, ticket.priority, ticket.category,
        )  # fmt: skip
        return _Processed(
            ProcessorOutcome.PROCESSED, sends, (ticket, incoming.occurred_at), pending
        )

    async def _dead_letter(
        self,
        value: bytes,
        reason: str,
        field: str | None,
        outcome: ProcessorOutcome = ProcessorOutcome.DEAD_LETTERED,
    ) -> _Processed:
        record = dead_letter(
            value, reason=reason, field=field, origin=TICKET_EVENTS, source=SOURCE,
            now=self.clock.now(),
        )  # fmt: skip
        digest = record.data.payload_sha256
        future = await self._outputs.send(DEAD_LETTERS, digest.encode(), to_json(record))
        log.warning("dead-lettered a record of %s: %s (field %s)", TICKET_EVENTS, reason, field)
        return _Processed(outcome, [future])


def chain(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    """Complete ``target`` as ``source`` completes (its result, its error, its cancel)."""

    def settle(done: asyncio.Future[Any]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(done.result())

    source.add_done_callback(settle)


def _ticket_of(stored: bytes) -> TicketState:
    record = parse_record(stored)
    if not isinstance(record, TicketUpdated):
        raise TypeError(f"{TICKET_STATE} holds a {record.kind}, not a ticket.updated")
    return record.data.ticket


def build_processor(settings: Settings, clock: Clock | None = None) -> Processor:
    (settings.state_dir / "processor").mkdir(parents=True, exist_ok=True)
    return Processor(
        settings,
        load_ruleset(settings.rules_file),
        clock or SystemClock(),
        load_directory(settings.customers_file),
    )


def run_processor(settings: Settings) -> None:
    configure_logging(settings)
    processor = build_processor(settings)
    port = metrics.serve_metrics(settings.processor_metrics_port, settings.metrics_host)
    print(f"processor: consuming {TICKET_EVENTS} on {settings.kafka_bootstrap}; "
          f"metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)  # fmt: skip
    run_worker(processor.app)
