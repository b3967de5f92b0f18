"""The faust apps of the engine: the settings every one of them shares, and topics of raw
bytes (records are JSON envelopes the engine parses itself)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import faust
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from faust.types import TP, AppT
from mode import Service
from mode.supervisors import CrashingSupervisor

from engine import metrics
from engine.kafka.consumer import (
    GROUP_HEARTBEAT_SECONDS,
    GROUP_SESSION_TIMEOUT_SECONDS,
    new_aio_consumer,
    new_aio_group_consumer,
    running,
)
from engine.kafka.membership import member_client_id
from engine.kafka.producer import faust_producer_settings, new_aio_producer
from engine.kafka.security import faust_options, security_for
from engine.kafka.watchdog import (
    EXIT_STALLED,
    STALL_AFTER_SECONDS,
    IdleClock,
    Skipped,
    skipped_records,
    stalled_partitions,
    with_skipped_in_order,
)
from engine.outage_log import wait_until_kafka_answers
from engine.settings import Settings
from engine.systemd_notify import SystemdNotifier, pet_watchdog

# Records an agent handles together before their outputs' acks are awaited at once.
BATCH_MAX_EVENTS = 500
# faust's take_events hands a batch over when it is full or when this long has passed
# since the last one, so every record below the maximum waits this long first: the floor
# of the ingest-to-routed latency. Records that arrive while a batch is being handled wait
# for it anyway, so a busy agent still takes large batches.
BATCH_WITHIN_SECONDS = 0.005
# The exit of a worker whose batch failed: a temporary failure (EX_TEMPFAIL), restart it.
EXIT_BATCH_FAILED = 75
# Records faust skipped are read from Kafka within this long, or the process exits.
SKIPPED_READ_SECONDS = 15.0
SKIPPED_POLL_MS = 500

log = logging.getLogger(__name__)


def engine_app(settings: Settings, app_id: str, datadir_name: str, **overrides: Any) -> faust.App:
    """A faust app on the engine's cluster: memory store (tables rebuilt from their
    changelogs), no web server, the producer settings of every producer of the engine
    (``engine.kafka.producer``), a short session, clients named after the process
    (``engine.kafka.membership``), reading from the start, and an agent
    that fails on Kafka trouble ends the process (to be restarted) instead of leaving a
    worker that consumes nothing."""
    return faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.state_dir / datadir_name),
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        agent_supervisor=CrashingSupervisor,
        **faust_options(security_for(settings.kafka_bootstrap)),
        **{
            **faust_producer_settings(),
            "broker_session_timeout": GROUP_SESSION_TIMEOUT_SECONDS,
            "broker_heartbeat_interval": GROUP_HEARTBEAT_SECONDS,
            "broker_client_id": member_client_id(app_id),
            **overrides,
        },
    )


def bootstrap_of(app: AppT) -> str:
    """The bootstrap servers of ``app``'s cluster, for a client of our own beside faust's."""
    return ",".join(f"{url.host}:{url.port or 9092}" for url in app.conf.broker)


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """A record as an agent's handler gets it: from faust's stream, or read from Kafka
    again when the stream skipped it."""

    tp: TP
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def partition(self) -> int:
        return self.tp.partition


def raw_topic(app: faust.App, name: str, partitions: int | None = None, acks: bool = True) -> Any:
    """A topic of plain bytes: records are JSON envelopes we parse ourselves (faust would
    otherwise decode with its own json codec, e.g. when it restores a table)."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=False,
        acks=acks,
    )


def changelog_topic(app: faust.App, name: str, partitions: int) -> Any:
    """A table's changelog, as faust makes its own: without acks. No stream reads it after
    the table is restored, so with acks faust would take its growing end for a stalled
    stream and log "Stream has not started processing" every few seconds."""
    return raw_topic(app, name, partitions, acks=False)


async def handle_batches(
    stream: Any,
    handle: Callable[[Sequence[StreamRecord]], Awaitable[None]],
    agent: str,
    *,
    contiguous: bool = False,
) -> None:
    """Hand ``stream``'s records to ``handle`` in batches (faust's ``take_events``), the
    batch's offsets acknowledged once ``handle`` returns.

    A batch that fails (Kafka trouble, or anything else ``handle`` lets out) ends the
    process at once, to be restarted and to read the batch again from the last commit.
    Crashing the faust way would lose it: ``take_events`` acknowledges a batch as it is
    left, even by an exception, and faust commits what is acknowledged as the worker
    stops, so records whose effects never reached Kafka would never be read again.

    ``contiguous``: the topic is neither compacted nor transactional, so its offsets follow
    one another. faust 0.15.3, after a rebalance, can hand over records fetched before it
    and drop the ones in between as already read. Such records are read from Kafka by a
    consumer of our own and handled in their place, in the same batch; if they cannot be,
    the process ends the same way, before faust commits past them."""
    app = stream.app
    ack_only_handed_over(app)
    expected: dict[Any, int] = {}

    async def forget_partitions(sender: Any, *args: Any, **kwargs: Any) -> None:
        expected.clear()

    if contiguous:
        app.on_partitions_revoked.connect(forget_partitions)
        _no_gaps_in(app.consumer, set(getattr(stream.channel, "topics", ())))
    async for batch in stream.take_events(BATCH_MAX_EVENTS, within=BATCH_WITHIN_SECONDS):
        records = [_record_of(event.message) for event in batch]
        skipped: dict[Skipped, list[StreamRecord]] = {}
        if contiguous:
            skipped, expected = await _read_what_was_skipped(app, records, expected, agent)
        try:
            await handle(with_skipped_in_order(records, skipped))
            await _count_as_processed(app.consumer, skipped)
        except Exception:
            log.critical(
                "%s: a batch of %d records failed; exiting without committing it, to read "
                "it again once restarted", agent, len(batch), exc_info=True,
            )  # fmt: skip
            _exit_at_once(EXIT_BATCH_FAILED)


def _record_of(message: Any) -> StreamRecord:
    return StreamRecord(message.tp, message.offset, message.key, message.value)


def ack_only_handed_over(app: faust.App) -> None:
    """Make the app's consumer count as processed only records that were handed over.

    faust 0.15.3's stream skips a record fetched while a rebalance is under way (flow
    control suspended) or in an earlier generation, and acknowledges it as it does a
    handled one, so its offset is committed once the records around it are: when the
    partition stays with (or comes back to) this process, the records skipped are never
    read again. Found by the fault campaign: runs of 25 to 45 acknowledged events of one
    partition with no decision and no state, the group's offset past them. Such a record
    is now released from faust's bookkeeping (a rebalance does not wait for it) without
    its offset counting as processed: it is read again from the last commit. An ack that
    arrives during a rebalance is not counted either; its record is read again too (a
    replay, which event ids make harmless)."""
    consumer: Any = app.consumer  # its bookkeeping is private: no public accessor
    if getattr(consumer, "_acks_only_handed_over", False):
        return
    ack = consumer.ack

    def ack_if_handed_over(message: Any) -> bool:
        if app.flow_control.is_active() and message.generation_id == app.consumer_generation_id:
            return bool(ack(message))
        message.acked = True
        consumer._unacked_messages.discard(message)
        return False

    consumer.ack = ack_if_handed_over
    consumer.seek_to_committed = _seek_to_committed_or_the_start(consumer)
    consumer._acks_only_handed_over = True


def _seek_to_committed_or_the_start(consumer: Any) -> Callable[[], Awaitable[Any]]:
    """The seek of faust's ``perform_seek`` after a rebalance, run in the consumer's thread
    as faust runs it: ``seek_each_to_committed_or_the_start``."""

    async def seek() -> Any:
        thread = consumer._thread
        started = time.monotonic()
        committed = await thread.call_thread(
            seek_each_to_committed_or_the_start, thread._ensure_consumer()
        )
        log.info(
            "%s: %d partitions sought to their committed offsets in %.3fs",
            consumer.app.conf.id, len(committed), time.monotonic() - started,
        )  # fmt: skip
        return committed

    return seek


async def seek_each_to_committed_or_the_start(client: Any) -> dict[TopicPartition, int | None]:
    """Seek each partition assigned to ``client`` (an ``AIOKafkaConsumer``) to its group's
    committed offset, and one never committed (or committed at 0) to its first record;
    return the committed offsets, None where there is none.

    faust seeks every partition to its committed offset after a rebalance, which is what
    makes a skipped record read again; but aiokafka seeks only to a committed offset above
    0, and leaves a partition with none (a new group) or 0 where it was: past the records
    fetched and skipped meanwhile, which were then never read (found by the SLA worker's
    poison-pill test: a new group's first five states, never timed). Such a partition is
    sought to its first record, as the earliest reset would.

    Every partition is given a position at once: aiokafka's ``seek_to_beginning`` only asks
    for a reset, and until the reset is done the partition has no position, which faust's
    livelock check reads and fails on (``AssertionError`` in ``verify_event_path``, the
    consumer crashed: seen after a stall's seek in the fault campaign). And aiokafka's
    ``seek_to_committed`` asks the coordinator one partition at a time, a round trip each
    on the path of every rebalance: the committed offsets are asked here in one request, the
    first offsets in one more."""
    partitions = list(client.assignment())
    if not partitions:
        return {}
    fetched = await client._coordinator.fetch_committed_offsets(partitions)
    committed = {tp: _offset_or_none(fetched.get(tp)) for tp in partitions}
    from_the_start = [tp for tp, offset in committed.items() if not offset]
    firsts = await client.beginning_offsets(from_the_start) if from_the_start else {}
    for tp, offset in committed.items():
        client.seek(tp, offset or firsts[tp])
    return committed


def _offset_or_none(fetched: Any) -> int | None:
    """A committed offset as aiokafka's ``committed`` returns it: None when never committed."""
    if fetched is None or fetched.offset == -1:
        return None
    return int(fetched.offset)


async def _read_what_was_skipped(
    app: faust.App, records: Sequence[StreamRecord], expected: dict[Any, int], agent: str
) -> tuple[dict[Skipped, list[StreamRecord]], dict[Any, int]]:
    """The records ``records`` skipped in their partitions, read from Kafka, and the next
    offsets expected after the batch; exits if they cannot be read.

    A partition first seen since the assignment is expected from its committed offset,
    which faust keeps privately (no public accessor), or asked of Kafka when faust does not
    have it yet (it forgets it at a revocation and learns it again only after it resumed
    fetching); one whose skipped records are older than the partition's log start offset
    lost them to retention, not to faust."""
    offsets = [(record.tp, record.offset) for record in records]
    first_seen = {tp for tp, _ in offsets if tp not in expected}
    committed = getattr(app.consumer, "_committed_offset", {})
    known = {tp: committed[tp] for tp in first_seen if committed.get(tp) is not None}
    if first_seen - known.keys():
        known.update(await _where_the_group_goes_on(app, first_seen - known.keys(), agent))
    holes, following = skipped_records(offsets, {**known, **expected})
    if not holes:
        return {}, following
    earliest = await app.consumer.earliest_offsets(*{hole.partition for hole in holes})
    holes = [hole for hole in holes if hole.found > earliest.get(hole.partition, 0)]
    if not holes:
        return {}, following
    try:
        async with asyncio.timeout(SKIPPED_READ_SECONDS):
            read = await read_skipped(bootstrap_of(app), holes)
    except Exception:
        log.critical(
            "%s: records skipped by the stream (%s) could not be read again; exiting "
            "without committing, to read them once restarted",
            agent, ", ".join(_described(hole) for hole in holes), exc_info=True,
        )  # fmt: skip
        _exit_at_once(EXIT_BATCH_FAILED)
    for hole in holes:
        log.warning(
            "%s: records %s were skipped by the stream; read again from Kafka and handled "
            "in their place", agent, _described(hole),
        )  # fmt: skip
        metrics.SKIPPED_RECORDS_READ_AGAIN.inc(len(read[hole]))
    return read, following


async def _where_the_group_goes_on(
    app: faust.App, partitions: set[TP], agent: str
) -> dict[TP, int]:
    """The group's committed offset of each of ``partitions``, or its log start offset
    where the group has none (the ``earliest`` reset of every engine app); nothing, with
    a warning, when Kafka does not answer (those partitions go unchecked this once)."""
    try:
        async with asyncio.timeout(SKIPPED_READ_SECONDS):
            consumer = new_aio_group_consumer(bootstrap_of(app), app.conf.id)
            async with running(consumer):  # not subscribed: it asks, and never joins
                committed = {
                    tp: await consumer.committed(TopicPartition(tp.topic, tp.partition))
                    for tp in partitions
                }
            never = [tp for tp, offset in committed.items() if offset is None]
            earliest = await app.consumer.earliest_offsets(*never) if never else {}
    except Exception:
        log.warning(
            "%s: the committed offsets of %s could not be read; their first records are "
            "not checked for skipped ones", agent, sorted(partitions), exc_info=True,
        )  # fmt: skip
        return {}
    return {tp: offset if offset is not None else earliest[tp] for tp, offset in committed.items()}


def _described(hole: Skipped) -> str:
    where = f"{hole.partition.topic}[{hole.partition.partition}]"
    return f"{hole.first} to {hole.found - 1} of {where}"


async def read_skipped(
    bootstrap: str, holes: Sequence[Skipped]
) -> dict[Skipped, list[StreamRecord]]:
    """The records of each of ``holes``, in order, read by a consumer of no group."""
    read: dict[Skipped, list[StreamRecord]] = {}
    async with running(new_aio_consumer(bootstrap, auto_offset_reset="earliest")) as consumer:
        for hole in holes:
            partition = TopicPartition(hole.partition.topic, hole.partition.partition)
            consumer.assign([partition])
            consumer.seek(partition, hole.first)
            records: list[StreamRecord] = []
            while await consumer.position(partition) < hole.found:
                fetched = await consumer.getmany(partition, timeout_ms=SKIPPED_POLL_MS)
                records.extend(
                    StreamRecord(hole.partition, message.offset, message.key, message.value)
                    for message in fetched.get(partition, ())
                    if message.offset < hole.found
                )
            read[hole] = records
    return read


async def _count_as_processed(
    consumer: Any, read: Mapping[Skipped, Sequence[StreamRecord]]
) -> None:
    """Let faust commit past the records it skipped, now that they were handled: it
    commits a partition up to its first offset neither acknowledged nor marked as a gap
    (its own mark for offsets that no record will fill; private, no public accessor)."""
    for hole in read:
        await consumer._engine_marks_gap(hole.partition, hole.first, hole.found - 1)


def _no_gaps_in(consumer: Any, topics: set[str]) -> None:
    """faust takes a jump in the offsets it reads for a gap left by compaction or
    transaction markers, and commits past it once the records around it are acknowledged.
    In a topic whose offsets follow one another such a jump is records faust dropped: it
    must not commit past them until the engine has handled them and marked them itself
    (``_engine_marks_gap``, faust's own ``_add_gap``). Found by the fault campaign: a
    partition's committed offset went from 232 to 685 with records 375 to 683 never
    handled and no hole seen by the agent."""
    if getattr(consumer, "_no_gaps_in", None) is not None:
        consumer._no_gaps_in.update(topics)
        return
    add_gap = consumer._add_gap
    consumer._no_gaps_in = set(topics)
    consumer._engine_marks_gap = add_gap

    async def add_gap_unless_contiguous(tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic not in consumer._no_gaps_in:
            await add_gap(tp, offset_from, offset_to)

    consumer._add_gap = add_gap_unless_contiguous


class StallWatch:
    """The stall check of decision 5 for an agent reading ``topic``: when nothing was
    processed for ``STALL_AFTER_SECONDS`` while records of an owned partition wait past
    its committed offset, faust's stream has dropped them. They are first read again in
    the process, by seeking every partition back to its committed offset (faust's own
    ``perform_seek``: nothing is in flight in an idle agent, so the records come again);
    if nothing was processed since that seek when the next check finds the same, the
    process exits to be restarted. Call ``check`` every ``STALL_CHECK_SECONDS``."""

    def __init__(self, app: faust.App, topic: str, idle: IdleClock, agent: str) -> None:
        self._app = app
        self._topic = topic
        self._idle = idle
        self._agent = agent
        self._sought_at: float | None = None

    async def check(self) -> None:
        consumer = self._app.consumer
        owned = [tp for tp in consumer.assignment() if tp.topic == self._topic]
        idle = self._idle.idle_seconds()
        if not owned or idle is None or idle < STALL_AFTER_SECONDS:
            return
        asked_at = self._idle.now()
        try:
            highwaters = await consumer.highwaters(*owned)
        except KafkaError:
            return  # Kafka away: nothing to judge by
        if self._idle.restarted_after_a_long_wait(asked_at):
            return  # Kafka answered only once back from an outage
        bookkeeping = getattr(consumer, "_committed_offset", {})  # no public accessor
        committed = {tp: bookkeeping.get(tp) for tp in owned}
        stalled = stalled_partitions(committed, highwaters, idle)
        if not stalled:
            return
        where = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in stalled)
        progressed_at = self._idle.progressed_at
        if self._sought_at is None or (progressed_at or 0.0) > self._sought_at:
            log.warning(
                "%s: records wait past the committed offset of %s and nothing was processed "
                "for %.0fs; reading them again from the committed offsets",
                self._agent, where, idle,
            )  # fmt: skip
            await consumer.perform_seek()
            self._idle.progressed()
            self._sought_at = self._idle.progressed_at
            return
        log.critical(
            "%s stalled: records wait past the committed offset of %s and nothing was "
            "processed for %.0fs, even after reading them again; exiting to be restarted",
            self._agent, where, idle,
        )  # fmt: skip
        _exit_at_once(EXIT_STALLED)


def _exit_at_once(code: int) -> NoReturn:
    """Exit before faust can acknowledge or commit anything more."""
    logging.shutdown()
    os._exit(code)


class _FromStart(Service):
    def __init__(self, run: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._run = run

    @property
    def shortlabel(self) -> str:
        return f"FromStart: {getattr(self._run, '__qualname__', self._run)}"

    async def on_start(self) -> None:
        self.add_future(self._run())


def run_from_start(app: faust.App, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` for the app's whole life, from the moment it starts.

    Unlike ``app.task`` and ``app.timer``, which faust starts only once the consumer group
    was joined and the tables recovered (which, after a worker died without leaving the
    group, takes the group's session timeout), this runs alongside that start-up."""
    app.add_dependency(_FromStart(run))


class OutputProducer(Service):
    """The engine's own aiokafka producer (``engine.kafka.producer``) for an agent's
    outputs, started and stopped with the app.

    A record sent through a faust topic passes through faust's message objects, callbacks
    and its producer buffer; profiled in the processor, that cost more CPU per record than
    aiokafka's own send. The agent awaits the futures this returns before faust commits
    the batch, so nothing changes in what is guaranteed."""

    def __init__(self, bootstrap: str, client_id: str, max_request_size: int) -> None:
        super().__init__()
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None

    @property
    def shortlabel(self) -> str:
        return "OutputProducer"

    async def on_start(self) -> None:
        # aiokafka binds a producer to the loop it is created in: the app's running loop.
        self._producer = new_aio_producer(
            self._bootstrap, client_id=self._client_id, max_request_size=self._max_request_size
        )
        await self._producer.start()

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        """Enqueue one record; the future resolves once Kafka acknowledged it."""
        assert self._producer is not None, "sent before the app started"
        future: asyncio.Future[Any] = await self._producer.send(topic, value, key=key)
        return future


def output_producer(app: faust.App, settings: Settings, max_request_size: int) -> OutputProducer:
    """An :class:`OutputProducer` that lives as long as ``app``."""
    producer = OutputProducer(settings.kafka_bootstrap, f"{app.conf.id}-outputs", max_request_size)
    app.add_dependency(producer)
    return producer


class _Worker(faust.Worker):
    """faust's worker, telling systemd READY=1 once faust says the app started (consumer
    group joined, partitions assigned, tables recovered) and STOPPING=1 when it stops."""

    notifier = SystemdNotifier(None)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        self.notifier.ready()

    async def on_stop(self) -> None:
        self.notifier.stopping()
        await super().on_stop()


def run_worker(app: faust.App, notifier: SystemdNotifier | None = None) -> None:
    """Run ``app`` as this process's faust worker until SIGINT or SIGTERM, with the log
    setup already made (``configure_logging``). Under systemd it says READY=1 once the
    app started, pets the watchdog from the app's loop from the start (recovering a long
    table is no stall), and says STOPPING=1. Started while Kafka is away, it waits for
    Kafka first."""
    wait_until_kafka_answers(
        [(url.host, url.port) for url in app.conf.broker if url.host and url.port]
    )
    notifier = notifier or SystemdNotifier.from_environment()
    run_from_start(app, lambda: pet_watchdog(notifier))
    worker = _Worker(app, quiet=True, override_logging=False)
    worker.notifier = notifier
    worker.spinner = None
    worker.execute_from_commandline()
