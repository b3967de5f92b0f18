"""The SNMP notification receiver: traps and INFORMs become ``trap.received`` events.

- SNMPv1 and v2c traps, v2c INFORMs (communities), SNMPv3 traps and INFORMs at
  authNoPriv and authPriv (USM users: SHA/SHA-2, AES); optionally authPriv only.
- An INFORM is answered only after Kafka acknowledged its event: pysnmp's
  NotificationReceiver answers before it calls back, so ``AckAfterStoreReceiver``
  (snmp_engine.py) keeps the response and the receiver sends it after Kafka's ack.
  With Kafka away no answer goes out, and the sender retries.
- A trap event Kafka does not take is spooled to local disk and replayed once Kafka is
  back (``TrapBacklog``, snmp_replay.py); so is a later event of the same ticket, to keep
  the ticket's order. A spooled INFORM is not answered either way.
- Refused messages are counted by reason (``ticketing_events_ingested_total{source="snmp",
  outcome="rejected"}``): pysnmp's own counters (bad community, unknown user, wrong
  digest ...) are read into it, and the receiver's policy adds its own reasons.
- No notification costs the others theirs: one past SNMP's limits (an OID of over 128
  arcs or an arc over 2^32-1, an integer outside 64 bits) is refused on arrival and
  counted (``oid_limit``, ``number_limit``); one that makes a decoder raise is counted
  (``undecodable``); one that cannot become an event for any reason is dead-lettered on
  its own, and the rest of its batch is stored.
- The SnmpEngine is created inside the running loop (pysnmp 7 binds to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pyasn1.type import univ
from pysnmp.entity import engine

from engine import metrics
from engine.clock import Clock
from engine.contract import (
    NotificationPdu,
    SecurityLevel,
    SnmpVersion,
    TrapReceived,
    to_json,
)
from engine.contract.topics import DEAD_LETTERS, SNMP_TRAPS, TICKET_EVENTS
from engine.errors import PublishError
from engine.ingest.snmp.devices import DeviceDirectory
from engine.ingest.snmp.fastpath import (
    MAX_ARC,
    MAX_OID_ARCS,
    Decoded,
    LimitError,
    inform_response,
    parse_v2c_notification,
)
from engine.ingest.snmp.fold import Fold, StormFolder
from engine.ingest.snmp.mibs import MibResolver
from engine.ingest.snmp.pysnmp_adapter import (
    Encoded,
    Respond,
    engine_id_of,
    new_engine,
    refusal_counters,
    udp_socket,
)
from engine.ingest.snmp.replay import TrapBacklog
from engine.ingest.snmp.trap_event import Notification, NotificationError, trap_event
from engine.ingest.snmp.users import SnmpUser
from engine.kafka.deadletter import dead_letter
from engine.metrics import HoldReason, IngestOutcome, IngestReason, IngestSource

log = logging.getLogger(__name__)
SOURCE = "snmp"
INGESTED = IngestSource.SNMP
BATCH = 500  # notifications published together
STORERS = 4  # batches waiting for Kafka's acks at once (each enqueued in arrival order)
_RANK = {level: rank for rank, level in enumerate(SecurityLevel)}
# The widest SNMP integers: Integer32 is signed, Counter64 unsigned.
_SMALLEST, _LARGEST = -(2**31), 2**64 - 1


def over_limit(notification: Notification) -> IngestReason | None:
    """Why a notification is past SNMP's limits (RFC 2578), or None: its OIDs (names and
    values) at most 128 arcs each at most 2^32-1, its integers within 64 bits. Checked
    before the MIBs are asked (their lookup recurses once per arc) or an arc is written
    as text (Python refuses an int of over 4,300 digits)."""
    for oid, value in notification.varbinds:
        if not _oid_within_limits(oid):
            return IngestReason.OID_LIMIT
        plain = value.value if isinstance(value, Decoded) else value
        if isinstance(plain, int | univ.Integer):
            if not _SMALLEST <= int(plain) <= _LARGEST:
                return IngestReason.NUMBER_LIMIT
        elif isinstance(plain, univ.ObjectIdentifier) and not _oid_within_limits(tuple(plain)):
            return IngestReason.OID_LIMIT
    return None


def _oid_within_limits(oid: tuple[int, ...]) -> bool:
    return len(oid) <= MAX_OID_ARCS and all(0 <= arc <= MAX_ARC for arc in oid)


@dataclass(frozen=True)
class ReceiverPolicy:
    """Who may send: communities (v1/v2c) and v3 users, and the least security level."""

    communities: tuple[str, ...]
    users: tuple[SnmpUser, ...]
    auth_priv_only: bool = False

    def refusal(self, notification: Notification) -> IngestReason | None:
        """Why an authenticated notification is still refused, or None."""
        level = notification.security_level
        if self.auth_priv_only and level is not SecurityLevel.AUTH_PRIV:
            return IngestReason.AUTH_PRIV_REQUIRED
        if notification.version is SnmpVersion.V3:
            user = next((u for u in self.users if u.name == notification.security_name), None)
            if user is not None and _RANK[level] < _RANK[user.level]:
                return IngestReason.SECURITY_LEVEL_TOO_LOW
        return None


class BatchPublisher(Protocol):
    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]: ...


@dataclass
class _Received:
    notification: Notification
    respond: Respond | None
    pdu: Encoded
    at: datetime
    audited: asyncio.Future[bool] | None = None
    """True once its record is on snmp.traps.v1: an INFORM is answered when its fold is too."""


class SnmpReceiver:
    """One SnmpEngine on one UDP socket, publishing what it receives."""

    def __init__(
        self,
        publisher: BatchPublisher,
        policy: ReceiverPolicy,
        mibs: MibResolver,
        devices: DeviceDirectory,
        clock: Clock,
        max_in_flight: int = 20000,
        engine_id: bytes | None = None,
        backlog: TrapBacklog | None = None,
        fold_seconds: float = 0.0,
    ) -> None:
        self._publisher = publisher
        self._backlog = backlog
        self._policy = policy
        self._mibs = mibs
        self._devices = devices
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._engine_id = engine_id
        self._waiting: deque[_Received] = deque()
        self._storing = 0
        self._arrived = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._folder: StormFolder[_Received] = StormFolder(fold_seconds)
        self._fold_due = asyncio.Event()
        self._closing = False
        self._community_index = {
            community.encode(): index + 1 for index, community in enumerate(policy.communities)
        }
        self._engine: engine.SnmpEngine | None = None
        self._counted: dict[IngestReason, int] = {}
        self._source = SOURCE
        self.socket: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.socket is not None
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    @property
    def receive_buffer_bytes(self) -> int:
        assert self.socket is not None
        return int(self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    @property
    def snmp_engine_id(self) -> bytes:
        assert self._engine is not None
        return engine_id_of(self._engine)

    async def start(self, host: str, port: int, receive_buffer: int) -> None:
        """Configure the engine and listen. Call from the running loop."""
        self.socket = udp_socket(host, port, receive_buffer)
        self._engine = new_engine(
            self._engine_id,
            self.socket,
            self._v2c_fast_path,
            self._policy.communities,
            self._policy.users,
            self._received,
            self._undecodable,
        )
        self._workers = [asyncio.ensure_future(self._store_batches()) for _ in range(STORERS)]
        self._workers.append(asyncio.ensure_future(self._send_due_folds()))
        self._source = f"snmp://{host}:{self.address[1]}"
        await asyncio.sleep(0)  # let the transport's endpoint open

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def drain(self) -> None:
        """Store what has arrived and what is folded, then stop storing (after :meth:`stop`)."""
        self._closing = True
        self._arrived.set()
        self._fold_due.set()
        await asyncio.gather(*self._workers)
        await self._publish_folds(self._folder.drain())

    def count_engine_rejections(self) -> None:
        """Move pysnmp's refusal counters into the ingest metric (call periodically)."""
        if self._engine is None:
            return
        for reason, value in refusal_counters(self._engine).items():
            delta = value - self._counted.get(reason, 0)
            if delta > 0:
                metrics.EVENTS_INGESTED.labels(INGESTED, IngestOutcome.REJECTED, reason).inc(delta)
            self._counted[reason] = value

    def _undecodable(self, error: Exception) -> None:
        """A datagram made a decoder raise: counted, and the next one is read."""
        log.debug("an SNMP message could not be decoded: %r", error)
        metrics.EVENTS_INGESTED.labels(
            INGESTED, IngestOutcome.REJECTED, IngestReason.UNDECODABLE
        ).inc()

    def _v2c_fast_path(self, datagram: bytes, address: Any, transport: Any) -> bool:
        """Take a v2c trap or INFORM without pysnmp (see snmp_fastpath); False: not one."""
        try:
            parsed = parse_v2c_notification(datagram)
        except LimitError:
            metrics.EVENTS_INGESTED.labels(
                INGESTED, IngestOutcome.REJECTED, IngestReason.OID_LIMIT
            ).inc()
            return True
        if parsed is None:
            return False
        index = self._community_index.get(parsed.community)
        if index is None:
            metrics.EVENTS_INGESTED.labels(
                INGESTED, IngestOutcome.REJECTED, IngestReason.BAD_COMMUNITY
            ).inc()
            return True
        notification = Notification(
            version=SnmpVersion.V2C,
            pdu=NotificationPdu.INFORM if parsed.inform else NotificationPdu.TRAP,
            security_name=f"community-{index}",
            security_level=SecurityLevel.NO_AUTH_NO_PRIV,
            engine_id=None,
            request_id=parsed.request_id,
            sender=str(address[0]),
            sender_port=int(address[1]),
            varbinds=parsed.varbinds,
        )
        respond: Respond | None = None
        if parsed.inform:
            response = inform_response(parsed)

            def respond() -> None:
                transport.transport.sendto(response, address)

        self._received(notification, respond, lambda: parsed.pdu)
        return True

    def _received(self, notification: Notification, respond: Respond | None, pdu: Encoded) -> None:
        refusal = over_limit(notification) or self._policy.refusal(notification)
        if refusal is not None:
            log.info("refused a %s notification from %s: %s", notification.version,
                     notification.sender, refusal)  # fmt: skip
            metrics.EVENTS_INGESTED.labels(INGESTED, IngestOutcome.REJECTED, refusal).inc()
            return
        if len(self._waiting) + self._storing >= self._max_in_flight:
            metrics.EVENTS_INGESTED.labels(
                INGESTED, IngestOutcome.REJECTED, IngestReason.OVERLOADED
            ).inc()
            return
        self._waiting.append(_Received(notification, respond, pdu, self._clock.now()))
        self._arrived.set()

    async def _store_batches(self) -> None:
        """Store what arrived, a batch at a time: one Kafka round trip for many traps."""
        while True:
            await self._arrived.wait()
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
                self._storing += len(batch)
                try:
                    await self._store(batch)
                except Exception:
                    log.exception("storing %d notifications failed", len(batch))
                    metrics.EVENTS_INGESTED.labels(
                        INGESTED, IngestOutcome.REJECTED, IngestReason.INTERNAL_ERROR
                    ).inc(len(batch))
                finally:
                    self._storing -= len(batch)
            if self._closing:
                return
            self._arrived.clear()

    async def _store(self, batch: list[_Received]) -> None:
        """Keep every notification on snmp.traps.v1, then fold them into ticket events."""
        events: list[tuple[_Received, TrapReceived]] = []
        unusable: list[tuple[_Received, Exception]] = []
        for received in batch:
            try:
                event = trap_event(
                    received.notification, self._mibs, self._devices, received.at, self._source
                )
            except Exception as problem:  # one notification's, never its batch's
                unusable.append((received, problem))
                continue
            received.audited = asyncio.get_running_loop().create_future()
            events.append((received, event))
        # Folded in arrival order, and enqueued before any later batch (each publish_many
        # takes its lock first thing, in the order these start): no await before this.
        now = time.monotonic()
        ready = [
            fold for received, event in events for fold in self._folder.add(event, received, now)
        ]
        metrics.SNMP_FOLDS_OPEN.set(self._folder.open_folds)
        self._fold_due.set()
        await asyncio.gather(
            self._audit(events),
            self._publish_folds(ready),
            *(self._dead_letter_unusable(received, problem) for received, problem in unusable),
        )

    async def _dead_letter_unusable(self, received: _Received, problem: Exception) -> None:
        field = problem.field if isinstance(problem, NotificationError) else None
        reason = str(problem) if isinstance(problem, ValueError) else repr(problem)
        try:
            pdu = received.pdu()
        except Exception as error:  # the encoder may fail on what the decoder took
            pdu, reason = b"", f"{reason}; its PDU could not be encoded: {error!r}"
        await self._dead_letter(pdu, reason[:2000], field, received.at, received.respond)

    async def _audit(self, events: list[tuple[_Received, TrapReceived]]) -> None:
        """Every notification as received, on snmp.traps.v1: the audit a fold stands for."""
        records: list[tuple[bytes, bytes]] = [
            (e.data.ticket_id.encode(), to_json(e)) for _, e in events
        ]
        backlog = self._backlog
        if backlog is not None and backlog.kafka_away:
            outcomes: list[PublishError | None] = [PublishError("Kafka away")] * len(records)
        else:
            outcomes = await self._publisher.publish_many(SNMP_TRAPS, list(records))
        for (received, _), failure in zip(events, outcomes, strict=True):
            if received.audited is not None:
                received.audited.set_result(failure is None)
        failed = [record for record, failure in zip(records, outcomes, strict=True) if failure]
        if failed and backlog is not None:
            backlog.hold_audit(failed)
            await backlog.synced()
        elif failed:
            log.warning("%d notifications not kept on %s", len(failed), SNMP_TRAPS)

    async def _send_due_folds(self) -> None:
        """Send each fold when its window ends."""
        while not self._closing:
            due_at = self._folder.next_due()
            timeout = None if due_at is None else max(0.0, due_at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fold_due.wait(), timeout)
            self._fold_due.clear()
            ready = self._folder.due(time.monotonic())
            metrics.SNMP_FOLDS_OPEN.set(self._folder.open_folds)
            if ready:
                try:
                    await self._publish_folds(ready)
                except Exception:
                    log.exception("sending %d folded alarms failed", len(ready))

    async def _publish_folds(self, folds: list[Fold[_Received]]) -> None:
        """Publish each fold's ticket event; answer its INFORMs once it is acknowledged."""
        if not folds:
            return
        folded = [(fold, fold.event()) for fold in folds]
        metrics.SNMP_TRAPS_FOLDED.inc(sum(fold.occurrences - 1 for fold in folds))
        held = self._hold_what_must_wait(folded)
        live = [pair for pair in folded if pair[1].event_id not in held] if held else folded
        outcomes = (
            await self._publisher.publish_many(
                TICKET_EVENTS, [(e.data.ticket_id.encode(), to_json(e)) for _, e in live]
            )
            if live
            else []
        )
        acked_at = self._clock.now()
        failed = [pair for pair, failure in zip(live, outcomes, strict=True) if failure]
        if failed:
            # INFORMs stay unanswered, so their senders retry; traps are spooled (or lost).
            log.warning("%d of %d alarm events not stored: %s", len(failed), len(outcomes),
                        next(failure for failure in outcomes if failure))  # fmt: skip
            if self._backlog is None:
                metrics.EVENTS_INGESTED.labels(
                    INGESTED, IngestOutcome.REJECTED, IngestReason.KAFKA_UNAVAILABLE
                ).inc(sum(fold.occurrences for fold, _ in failed))
            else:
                self._backlog.kafka_failed()
                self._hold(failed, HoldReason.KAFKA_UNAVAILABLE)
        to_answer: list[_Received] = []
        for (fold, _), failure in zip(live, outcomes, strict=True):
            if failure is not None:
                continue
            for received in fold.members:
                elapsed = (acked_at - received.at).total_seconds()
                metrics.INGEST_ACK_SECONDS.labels(INGESTED).observe(max(0.0, elapsed))
                metrics.EVENTS_INGESTED.labels(
                    INGESTED, IngestOutcome.ACCEPTED, IngestReason(received.notification.pdu)
                ).inc()
                if received.respond is not None:
                    to_answer.append(received)
        if self._backlog is not None and (held or failed):
            await self._backlog.synced()
        for received in to_answer:
            # Its own record too: the audit may still wait for Kafka's ack.
            if received.audited is not None and await received.audited and received.respond:
                received.respond()

    def _hold_what_must_wait(self, events: list[tuple[Fold[_Received], TrapReceived]]) -> set[str]:
        """Spool at once the events that must not overtake the spool (TrapBacklog);
        their event ids. An INFORM spooled is not answered: its sender retries."""
        backlog = self._backlog
        if backlog is None or backlog.idle:
            return set()
        waiting = [
            (pair, reason)
            for pair in events
            if (reason := backlog.reason_to_hold(pair[1].data.ticket_id.encode())) is not None
        ]
        for reason, run in itertools.groupby(waiting, key=lambda item: item[1]):
            self._hold([pair for pair, _ in run], reason)
        return {pair[1].event_id for pair, _ in waiting}

    def _hold(self, events: list[tuple[Fold[_Received], TrapReceived]], reason: HoldReason) -> None:
        assert self._backlog is not None
        appended = self._backlog.hold(
            [(e.data.ticket_id.encode(), to_json(e)) for _, e in events], reason
        )
        counts = [fold.occurrences for fold, _ in events]
        kept, dropped = sum(counts[: appended.kept]), sum(counts[appended.kept :])
        if kept:
            metrics.EVENTS_INGESTED.labels(
                INGESTED, IngestOutcome.SPOOLED, IngestReason(reason)
            ).inc(kept)
        if dropped:
            log.warning("trap spool: %d notifications dropped (%s)", dropped,
                        appended.reason)  # fmt: skip
            metrics.EVENTS_INGESTED.labels(
                INGESTED, IngestOutcome.REJECTED, IngestReason(f"spool_{appended.reason}")
            ).inc(dropped)

    async def _dead_letter(
        self,
        pdu: bytes,
        reason: str,
        field: str | None,
        received_at: datetime,
        respond: Respond | None,
    ) -> None:
        record = dead_letter(
            pdu, reason=f"notification could not be used: {reason}", field=field,
            origin="snmp", source=self._source, now=received_at,
        )  # fmt: skip
        try:
            await self._publisher.publish(
                DEAD_LETTERS, record.data.payload_sha256.encode(), to_json(record)
            )
        except PublishError:
            metrics.EVENTS_INGESTED.labels(
                INGESTED, IngestOutcome.REJECTED, IngestReason.KAFKA_UNAVAILABLE
            ).inc()
            return
        metrics.EVENTS_INGESTED.labels(
            INGESTED, IngestOutcome.DEAD_LETTERED, IngestReason.UNUSABLE
        ).inc()
        if respond is not None:
            respond()


def engine_id_option(text: str) -> bytes | None:
    """The receiver's snmpEngineID from its hex setting (empty: pysnmp's default)."""
    if not text:
        return None
    return bytes.fromhex(text.lower().removeprefix("0x"))
