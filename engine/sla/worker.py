"""``engine sla``: the SLA worker, a faust app over the compacted ``tickets.state.v1``.

For each state record it decides the ticket's update obligation (``next_update_due``) and
keeps it, with the alerts already emitted, in the ``sla-clocks`` table, whose changelog is
the compacted ``sla.clocks.v1`` (written and awaited by the worker itself, like the
processor's state). A timer asks the due index (one heap per owned partition, rebuilt from
the table after each rebalance) for the tickets whose next alert is due, and only those
are read: a tick with nothing due costs what checking each heap's top costs. A resolved
ticket's row is deleted (a tombstone on the changelog, decision 32), so the table holds the
open and waiting tickets only.

The alert is acknowledged by Kafka before the progress is written, so a crash in between
never skips one. It is not sent twice either when partitions change hands: a revocation
waits for the tick under way to record what it sent; a worker taking partitions over reads
back the alerts sent on them in the last ``ALERTS_READ_BACK`` and counts them in the rows
(the previous owner stopped or killed between an alert and its row); and a row Kafka did
not acknowledge is sent again on its own, without its alert. A consumer still shows each
``dedup_key`` and ``repeat`` once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import (
    SlaAlertData,
    SlaBreached,
    SlaClockData,
    SlaClockUpdated,
    SlaFacts,
    SlaWarning,
    TicketUpdated,
    parse_record,
    to_json,
)
from engine.contract.customers import CustomerDirectory, load_directory
from engine.contract.identity import event_id
from engine.contract.topics import (
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTERS,
    SLA_ALERTS,
    SLA_CLOCKS,
    TICKET_STATE,
)
from engine.errors import describe_validation, field_path
from engine.kafka.catch_up import records_since
from engine.kafka.consumer import GROUP_SESSION_TIMEOUT_SECONDS
from engine.kafka.deadletter import dead_letter
from engine.kafka.faust_app import (
    StallWatch,
    StreamRecord,
    changelog_topic,
    engine_app,
    handle_batches,
    output_producer,
    raw_topic,
    run_worker,
)
from engine.kafka.watchdog import (
    STALL_CHECK_SECONDS,
    IdleClock,
)
from engine.metrics import SlaObligation
from engine.process import configure_logging
from engine.settings import Settings
from engine.sla.alerts import (
    alert_record,
    next_alert,
    progress_of,
    progress_with_sent,
    sent_alerts_by_ticket,
    step,
)
from engine.sla.calendars import CalendarError, Calendars, ZonedCalendar, load_calendars
from engine.sla.facts import facts_of
from engine.sla.index import DueIndex
from engine.sla.obligations import Obligation, SlaPolicy, next_update_due
from engine.sla.rows import RowChange, row_change
from engine.sla.timescale import TimeScale

log = logging.getLogger(__name__)
SOURCE = "engine.sla"
REBUILD_YIELD_EVERY = 10_000
# How far back a worker taking partitions over looks for alerts their previous owner sent
# without recording them: its last ticks before the group moved the partitions (a session
# and a rebalance), with room for a slow recovery.
ALERTS_READ_BACK = timedelta(minutes=15)
# A read back that takes longer (partitions without a leader yet) is given up.
READ_BACK_TIMEOUT_SECONDS = 15.0
# How long a revocation waits for the tick under way to record its alerts (a tick waits
# for Kafka's acknowledgements; with Kafka away the group cannot move partitions anyway).
REVOKE_WAIT_SECONDS = 10.0


def index_entry(raw: bytes) -> tuple[int, str, datetime | None]:
    """(partition, ticket, next alert time; None: disarmed) of a table row. Rows are the
    worker's own, validated when written: read without the full model, which is what makes
    rebuilding the index after a rebalance cheap."""
    data = json.loads(raw)["data"]
    due = data["next_alert_at"]
    return (
        data["partition"],
        data["ticket_id"],
        None if due is None else datetime.fromisoformat(due),
    )


class SlaWorker:
    def __init__(
        self,
        settings: Settings,
        calendars: Calendars,
        directory: CustomerDirectory,
        clock: Clock,
    ) -> None:
        self.calendars = calendars
        self.directory = directory
        self.clock = clock
        self.bootstrap = settings.kafka_bootstrap
        self.scale = TimeScale(settings.sla_time_scale, settings.sla_time_origin)
        self.policy = SlaPolicy(
            warning_lead=timedelta(minutes=settings.sla_warning_lead_minutes),
            pause_while_waiting=settings.sla_pause_while_waiting,
        )
        # A killed worker's partitions move to its replacement after the engine's short
        # session (consumer.GROUP_SESSION_TIMEOUT_SECONDS), not faust's 60 s.
        # Dead letters keep their input whole: a state record near a ticket topic's limit
        # is a larger dead letter than Kafka's default request takes.
        self.app = engine_app(
            settings,
            f"{settings.app_id}-sla",
            "sla",
            producer_max_request_size=DEAD_LETTER_MAX_BYTES + 64 * 1024,
        )
        self.states = raw_topic(self.app, TICKET_STATE, settings.partitions)
        self.clocks_topic = changelog_topic(self.app, SLA_CLOCKS, settings.partitions)
        # Alerts go through the engine's idempotent producer: a send retried after a
        # broker died before acknowledging it is not written twice (faust's producer is
        # idempotent only inside transactions).
        self.alerts = output_producer(self.app, settings, DEAD_LETTER_MAX_BYTES)
        self.dead_letters = raw_topic(self.app, DEAD_LETTERS)
        self.clocks = self.app.Table(
            "sla-clocks",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            changelog_topic=self.clocks_topic,
            use_partitioner=True,
        )
        self.index = DueIndex()
        # The agent and the timer both read a row, await Kafka and write the row: one at a
        # time, or a tick would write back a row the agent deleted (or disarmed) meanwhile.
        self._rows_lock = asyncio.Lock()
        self.ready = False
        self.monotonic = time.monotonic
        self._last_tick: float | None = None
        self._quiet_until = 0.0
        # Rows whose alert Kafka acknowledged and whose own write it did not: already in
        # the table, sent again at the next tick (with their partition).
        self._unsaved: dict[str, tuple[int, bytes]] = {}
        self.app.agent(self.states, name="sla-clocks", concurrency=1)(self._clocks_agent)
        self.app.timer(settings.sla_tick_seconds)(self.tick)
        self._idle = IdleClock()
        self._idle.progressed()
        self.app.timer(STALL_CHECK_SECONDS)(
            StallWatch(self.app, TICKET_STATE, self._idle, "sla").check
        )
        self.clocks.on_recover(self._rebuild_index)
        self.app.on_partitions_revoked.connect(cast(Any, self._on_revoked))

    # --- the table and its index ---------------------------------------------------------

    def _stored(self, ticket_id: str) -> SlaClockData | None:
        raw = self.clocks.get(ticket_id.encode())
        if raw is None:
            return None
        record = parse_record(raw)
        if not isinstance(record, SlaClockUpdated):
            raise TypeError(f"{SLA_CLOCKS} holds a {record.kind}, not sla.clock_updated")
        return record.data

    def _row(self, clock: SlaClockData, cause: str) -> bytes:
        record = SlaClockUpdated(
            event_id=event_id("sla.clock_updated", f"{clock.ticket_id}:{cause}"),
            occurred_at=self.clock.now(),
            source=SOURCE,
            data=clock,
        )
        return to_json(record)

    async def _send_row(self, ticket_id: str, row: bytes) -> Any:
        return await self.clocks_topic.send(key=ticket_id.encode(), value=row)

    async def _delete_row(self, partition: int, ticket_id: str) -> Any:
        """A tombstone on the compacted changelog: compaction drops the ticket's rows, and
        a worker recovering the table removes the key (faust's stores apply a None value
        as a deletion)."""
        pending = await self.clocks_topic.send(key=ticket_id.encode(), value=None)
        self._unsaved.pop(ticket_id, None)
        self.clocks.data.pop(ticket_id.encode(), None)
        self.index.cancel(partition, ticket_id)
        metrics.SLA_ROWS_DELETED.inc()
        self._count()
        return pending

    def _count(self) -> None:
        metrics.SLA_ROWS.set(len(self.clocks.data))
        metrics.SLA_ARMED.set(len(self.index))

    async def _rebuild_index(self) -> None:
        owned = {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == TICKET_STATE
        }
        for partition in self.index.partitions - owned:
            self.index.revoke(partition)
        entries: dict[int, list[tuple[str, datetime]]] = {partition: [] for partition in owned}
        elsewhere = []
        for count, (key, raw) in enumerate(list(self.clocks.data.items()), start=1):
            try:
                partition, ticket_id, due_at = index_entry(raw)
            except Exception as error:
                await self._drop_unusable_row(key, error)
                continue
            if partition not in owned:
                elsewhere.append(key)
            elif due_at is not None:
                entries[partition].append((ticket_id, due_at))
            if count % REBUILD_YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a large table does not starve the event loop
        # Rows this worker wrote for partitions it no longer owns: their new owner may
        # delete them, and if the partition comes back they are recovered afresh. Kept,
        # they would outlive a tombstone compacted away meanwhile (faust's memory store
        # forgets only the rows it recovered itself).
        for key in elsewhere:
            self.clocks.data.pop(key, None)
        for partition, found in entries.items():
            self.index.assign(partition, found)
        await self._count_alerts_already_sent(owned)
        metrics.SLA_PARTITIONS.set(len(owned))
        self._count()
        self.ready = True
        log.info("sla: owns partitions %s, %d armed obligations, %d table rows",
                 sorted(owned), len(self.index), len(self.clocks.data))  # fmt: skip

    async def _drop_unusable_row(self, key: bytes, error: Exception) -> None:
        """A row the worker cannot read (its changelog holds a record the worker did not
        write) or work out: dropped from the table and kept as a dead letter; the ticket's
        next state arms it again."""
        raw = self.clocks.data.pop(key, None)
        problem = describe_validation(error) if isinstance(error, ValidationError) else repr(error)
        letter = dead_letter(
            raw or b"", reason=f"not a usable SLA row: {problem}", field=None,
            origin=SLA_CLOCKS, source=SOURCE, now=self.clock.now(),
        )  # fmt: skip
        log.error("sla: dropped the row of %r: %s", key[:200], letter.data.reason[:300])
        await self.dead_letters.send(key=letter.data.payload_sha256.encode(), value=to_json(letter))
        self._count()

    async def _count_alerts_already_sent(self, owned: set[int]) -> None:
        """Count in the rows the alerts sent on the owned partitions lately that the rows
        do not count yet (alerts are keyed by ticket like the states, so a partition's
        alerts are its tickets'). Kafka not answering leaves the rows as they are: an alert
        may then be sent twice, same event id, as before this read existed."""
        since = self.clock.now() - ALERTS_READ_BACK
        partitions = [TopicPartition(SLA_ALERTS, partition) for partition in sorted(owned)]
        try:
            async with asyncio.timeout(READ_BACK_TIMEOUT_SECONDS):
                records = await records_since(
                    self.bootstrap, partitions, int(since.timestamp() * 1000)
                )
        except (KafkaError, OSError, TimeoutError) as error:
            log.warning("sla: could not read back the alerts sent lately (%s); an alert "
                        "the partition's previous owner sent may be sent again", error)  # fmt: skip
            return
        sent = sent_alerts_by_ticket(record.value for record in records if record.value)
        counted = [
            (clock, self._row(clock, "alerts-read-back"))
            for clock in (self._with_sent(ticket_id, alerts) for ticket_id, alerts in sent.items())
            if clock is not None
        ]
        recorded = await acknowledged(
            [self._send_row(clock.ticket_id, row) for clock, row in counted]
        )
        for (clock, row), ok in zip(counted, recorded, strict=True):
            if not ok:
                self._unsaved[clock.ticket_id] = (clock.partition, row)
            self.clocks.data[clock.ticket_id.encode()] = row
            if clock.next_alert_at is None:
                self.index.cancel(clock.partition, clock.ticket_id)
            else:
                self.index.schedule(clock.partition, clock.ticket_id, clock.next_alert_at)
        if counted:
            metrics.SLA_ALERTS_READ_BACK.inc(len(counted))
            log.info("sla: %d tickets had alerts sent by the partitions' previous owner that "
                     "their rows did not count yet", len(counted))  # fmt: skip

    def _with_sent(self, ticket_id: str, alerts: list[SlaAlertData]) -> SlaClockData | None:
        """The ticket's row with the alerts already sent counted; None: nothing to change,
        or a row the worker cannot work out (the tick drops it as a dead letter when due)."""
        try:
            stored = self._stored(ticket_id)
            if stored is None or stored.progress is None:
                return None
            progress = progress_with_sent(stored.progress, alerts)
            if progress == stored.progress:
                return None
            obligation, calendar = self._obligation(stored.facts)
            if obligation is None:
                return None
            due_at = next_alert(obligation, progress, calendar, self.policy).due_at
        except Exception:
            return None
        return stored.model_copy(update={"progress": progress, "next_alert_at": due_at})

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        """No alert once the partitions may change hands; a tick under way first records
        the alerts it sent, so that the next owner's rows count them."""
        self.ready = False
        try:
            async with asyncio.timeout(REVOKE_WAIT_SECONDS):
                async with self._rows_lock:
                    await self._save_unsaved()
        except TimeoutError:
            log.warning("sla: the tick under way did not record its alerts within %.0fs of "
                        "the revocation", REVOKE_WAIT_SECONDS)  # fmt: skip

    # --- state records arm, re-arm and disarm obligations -------------------------------

    def _calendar(self, facts: SlaFacts) -> ZonedCalendar:
        return self.calendars.for_plan(facts.plan, facts.calendar).in_zone(facts.timezone)

    def _obligation(self, facts: SlaFacts) -> tuple[Obligation | None, ZonedCalendar]:
        """The obligation on the SLA timeline (compressed when sla_time_scale says so)."""
        calendar = self._calendar(facts)
        return next_update_due(self.scale.facts(facts), calendar, self.policy), calendar

    async def _clocks_agent(self, stream: Any) -> None:
        # Taken in batches whose writes are awaited together before faust commits the
        # offsets (the processor's way, decision 3): a cold start over a large state topic
        # is not one Kafka round trip per ticket.
        await handle_batches(stream, self._handle_records, "sla-clocks")

    async def _handle_records(self, records: Sequence[StreamRecord]) -> None:
        self._idle.progressed()
        await self.on_states([(record.partition, record.key, record.value) for record in records])

    async def on_states(self, records: Sequence[tuple[int, bytes | None, bytes | None]]) -> None:
        """A batch of (partition, key, state record): every write sent, then all awaited."""
        async with self._rows_lock:
            sends = [
                await (self.on_state(partition, value) if value is not None
                       else self.on_deleted(partition, key))
                for partition, key, value in records
            ]  # fmt: skip
            await asyncio.gather(*(send for send in sends if send is not None))

    async def on_deleted(self, partition: int, key: bytes | None) -> Any:
        """A tombstone on the state topic: the ticket's state was deleted (the processor
        never deletes one; an operator may), so its row is deleted too. A ticket without a
        row changes nothing."""
        if key is None or key not in self.clocks.data:
            return None
        return await self._delete_row(partition, key.decode())

    async def on_state(self, partition: int, value: bytes) -> Any:
        """Arm, re-arm or disarm the ticket's obligation; returns the pending write to
        await (None: nothing to write). A record the worker cannot work out, whatever it
        makes the code raise (a date past year 9999 overflows), is a dead letter."""
        try:
            planned = self._planned(partition, value)
        except Exception as error:
            return await self._dead_letter(value, error)
        if planned is None:
            return None  # nothing the obligation depends on changed, or resolved and gone
        if isinstance(planned, str):
            return await self._delete_row(partition, planned)
        clock, row = planned
        ticket_id = clock.ticket_id
        pending = await self._send_row(ticket_id, row)
        self._unsaved.pop(ticket_id, None)  # this row counts what the unsaved one did
        self.clocks.data[ticket_id.encode()] = row
        if clock.next_alert_at is None:
            self.index.cancel(partition, ticket_id)
        else:
            self.index.schedule(partition, ticket_id, clock.next_alert_at)
        self._count()
        return pending

    def _planned(self, partition: int, value: bytes) -> tuple[SlaClockData, bytes] | str | None:
        """What a state record changes: nothing (None), the row to delete (its ticket id)
        or the new row; computed without writing anything."""
        record = parse_record(value)
        if not isinstance(record, TicketUpdated):
            raise TypeError(f"expected ticket.updated, got {record.kind}")
        ticket = record.data.ticket
        stored = self._stored(ticket.ticket_id)
        previous = stored.facts if stored else None
        pause = self.policy.pause_while_waiting
        facts = facts_of(ticket, self.directory, previous, pause)
        obligation, calendar = self._obligation(facts)
        change = row_change(previous, facts, armed=obligation is not None)
        if change is RowChange.KEEP:
            return None
        if change is RowChange.DELETE:
            return facts.ticket_id
        progress, next_alert_at = None, None
        if obligation is not None:
            progress = progress_of(obligation, stored.progress if stored else None)
            next_alert_at = next_alert(obligation, progress, calendar, self.policy).due_at
        clock = SlaClockData(
            ticket_id=facts.ticket_id,
            partition=partition,
            facts=facts,
            progress=progress,
            next_alert_at=next_alert_at,
        )
        return clock, self._row(clock, record.event_id)

    async def _dead_letter(self, value: bytes, error: Exception) -> Any:
        field = None
        if isinstance(error, ValidationError):
            field = field_path(error.errors()[0]["loc"]) or None
        letter = dead_letter(
            value, reason=f"not a usable ticket state: {error}", field=field,
            origin=TICKET_STATE, source=SOURCE, now=self.clock.now(),
        )  # fmt: skip
        key = letter.data.payload_sha256.encode()
        return await self.dead_letters.send(key=key, value=to_json(letter))

    # --- the timer -----------------------------------------------------------------------

    async def tick(self) -> None:
        if self._outlived_its_session() or not self.ready:
            return
        async with self._rows_lock:
            await self._tick()

    def _outlived_its_session(self) -> bool:
        """Whether to hold this tick's alerts back: a worker that did not run for longer
        than its group session (SIGSTOP, a paused VM, a blocked loop) was put out of the
        group meanwhile, and the worker that took its partitions emitted what fell due.
        It emits nothing for one session more, time for its consumer to learn that and
        rejoin (the recovery that follows sets ``ready`` again)."""
        now = self.monotonic()
        last, self._last_tick = self._last_tick, now
        if last is not None and now - last > GROUP_SESSION_TIMEOUT_SECONDS:
            log.warning(
                "sla: did not run for %.0fs, longer than the group session; no alerts "
                "for %.0fs, until the group says which partitions are still this worker's",
                now - last, GROUP_SESSION_TIMEOUT_SECONDS,
            )  # fmt: skip
            self._quiet_until = now + GROUP_SESSION_TIMEOUT_SECONDS
        return now < self._quiet_until

    async def _save_unsaved(self) -> None:
        """Send again the rows Kafka did not acknowledge (their alerts it did)."""
        if not self._unsaved:
            return
        unsaved = list(self._unsaved.items())
        recorded = await acknowledged(
            [self._send_row(ticket_id, row) for ticket_id, (_, row) in unsaved]
        )
        for (ticket_id, _), ok in zip(unsaved, recorded, strict=True):
            if ok:
                self._unsaved.pop(ticket_id, None)

    async def _tick(self) -> None:
        await self._save_unsaved()
        now = self.scale.virtual(self.clock.now())
        due = self.index.pop_due(now)
        if not due:
            return
        planned: list[tuple[int, _Planned]] = []
        for partition, ticket_id in due:
            try:
                plan = self._plan(ticket_id, now)
            except Exception as error:
                await self._drop_unusable_row(ticket_id.encode(), error)
                continue
            if plan is not None:
                planned.append((partition, plan))
        # Every alert of the tick is sent, then all acknowledgements awaited, and only then
        # is each ticket's progress recorded: effects before bookkeeping. A ticket whose
        # alert Kafka did not acknowledge is due again at the next tick; one whose alert it
        # acknowledged and whose row it did not keeps the new row in the table, and only
        # the row is sent again (the alert again would be a duplicate).
        alerted = await acknowledged(
            [self._send_alert(plan) if plan.alert else None for _, plan in planned]
        )
        kept = [item for item, ok in zip(planned, alerted, strict=True) if ok]
        recorded = await acknowledged(
            [self._send_row(plan.clock.ticket_id, plan.row) for _, plan in kept]
        )
        retried = [item for item, ok in zip(planned, alerted, strict=True) if not ok]
        if retried:
            log.warning("sla: %d alerts not acknowledged; retrying next tick", len(retried))
        for partition, plan in retried:
            self.index.schedule(partition, plan.clock.ticket_id, now)
        for (partition, plan), ok in zip(kept, recorded, strict=True):
            ticket_id = plan.clock.ticket_id
            if ok:
                self._unsaved.pop(ticket_id, None)
            else:
                self._unsaved[ticket_id] = (partition, plan.row)
            self.clocks.data[ticket_id.encode()] = plan.row
            if plan.clock.next_alert_at is not None:
                self.index.schedule(partition, ticket_id, plan.clock.next_alert_at)
        if len(kept) > sum(recorded):
            log.warning("sla: %d rows not acknowledged (their alerts were); sending them "
                        "again next tick", len(kept) - sum(recorded))  # fmt: skip

    def _plan(self, ticket_id: str, now: datetime) -> _Planned | None:
        """What the timer does for one due ticket: the alert to send, if any, and the row."""
        stored = self._stored(ticket_id)
        if stored is None or stored.next_alert_at is None:
            return None
        obligation, calendar = self._obligation(stored.facts)
        if obligation is None:
            return None
        due = step(obligation, stored.progress, calendar, self.policy, now)
        alert = None
        if due.emit is not None:
            alert = alert_record(obligation, due.emit, self.clock.now(), SOURCE)
        clock = stored.model_copy(
            update={"progress": due.progress, "next_alert_at": due.next_due.due_at}
        )
        cause = f"{obligation.key}:{due.progress.warned}:{due.progress.breaches}"
        return _Planned(alert, clock, self._row(clock, cause))

    async def _send_alert(self, plan: _Planned) -> Any:
        assert plan.alert is not None
        future = await self.alerts.send(
            SLA_ALERTS, key=plan.clock.ticket_id.encode(), value=to_json(plan.alert)
        )
        data = plan.alert.data
        metrics.SLA_ALERTS_EMITTED.labels(plan.alert.kind, SlaObligation(data.obligation)).inc()
        log.info("sla: %s %s repeat %d", plan.alert.kind, data.dedup_key, data.repeat)
        return future


@dataclass(frozen=True)
class _Planned:
    alert: SlaWarning | SlaBreached | None
    clock: SlaClockData
    row: bytes


async def acknowledged(sends: Sequence[Awaitable[Any] | None]) -> list[bool]:
    """Enqueue each send in order, then await every acknowledgement: for each, whether
    Kafka acknowledged it (a missing send counts as acknowledged). Errors other than
    Kafka's own are raised."""
    enqueued: list[bool | asyncio.Future[Any]] = []  # a pending send, or its outcome
    for send in sends:
        if send is None:
            enqueued.append(True)
            continue
        try:
            enqueued.append(await send)
        except (KafkaError, TimeoutError):
            enqueued.append(False)
    waited = [item for item in enqueued if not isinstance(item, bool)]
    outcomes = iter(await asyncio.gather(*(_acked(future) for future in waited)))
    return [item if isinstance(item, bool) else next(outcomes) for item in enqueued]


async def _acked(future: asyncio.Future[Any]) -> bool:
    try:
        await future
    except (KafkaError, TimeoutError):
        return False
    return True


def build_worker(settings: Settings, clock: Clock | None = None) -> SlaWorker:
    (settings.state_dir / "sla").mkdir(parents=True, exist_ok=True)
    calendars = load_calendars(settings.sla_calendars_file)
    directory = load_directory(settings.customers_file)
    for customer in directory.customers:
        if customer.calendar is not None:
            try:
                calendars.named(customer.calendar)
            except CalendarError as error:
                raise CalendarError(f"customer {customer.id}: {error}") from None
    return SlaWorker(settings, calendars, directory, clock or SystemClock())


def run_sla_worker(settings: Settings) -> None:
    configure_logging(settings)
    worker_app = build_worker(settings)
    port = metrics.serve_metrics(settings.sla_metrics_port, settings.metrics_host)
    print(f"sla: timing update obligations from {TICKET_STATE}, alerts on {SLA_ALERTS}; "
          f"metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)  # fmt: skip
    run_worker(worker_app.app)
