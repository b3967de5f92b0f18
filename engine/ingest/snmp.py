"""The SNMP notification receiver: traps and INFORMs become ``trap.received`` events.

- SNMPv1 and v2c traps, v2c INFORMs (communities), SNMPv3 traps and INFORMs at
  authNoPriv and authPriv (USM users: SHA/SHA-2, AES); optionally authPriv only.
- An INFORM is answered only after Kafka acknowledged its event: pysnmp's
  NotificationReceiver answers before it calls back, so :class:`AckAfterStoreReceiver`
  keeps the response and sends it from the publish's completion. With Kafka away no
  answer goes out, and the sender retries.
- Refused messages are counted by reason (``ticketing_events_ingested_total{source="snmp",
  outcome="rejected"}``): pysnmp's own counters (bad community, unknown user, wrong
  digest ...) are read into it, and the receiver's policy adds its own reasons.
- The SnmpEngine is created inside the running loop (pysnmp 7 binds to it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pyasn1.codec.ber import encoder
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import error, rfc3411
from pysnmp.proto.api import v2c
from pysnmp.proto.proxy import rfc2576

from engine import metrics
from engine.clock import Clock
from engine.deadletter import dead_letter
from engine.devices import DeviceDirectory
from engine.errors import PublishError
from engine.ingest.mibs import MibResolver
from engine.ingest.snmp_fastpath import inform_response, parse_v2c_notification
from engine.ingest.snmp_users import AuthProtocol, PrivProtocol, SnmpUser
from engine.ingest.trap_event import Notification, NotificationError, trap_event
from engine.models import NotificationPdu, SecurityLevel, SnmpVersion, TrapReceived, to_json
from engine.topics import DEAD_LETTERS, TICKET_EVENTS

log = logging.getLogger(__name__)
SOURCE = "snmp"
BATCH = 500  # notifications published together
STORERS = 4  # batches waiting for Kafka's acks at once (each enqueued in arrival order)

_AUTH = {
    AuthProtocol.SHA: config.USM_AUTH_HMAC96_SHA,
    AuthProtocol.SHA224: config.USM_AUTH_HMAC128_SHA224,
    AuthProtocol.SHA256: config.USM_AUTH_HMAC192_SHA256,
    AuthProtocol.SHA384: config.USM_AUTH_HMAC256_SHA384,
    AuthProtocol.SHA512: config.USM_AUTH_HMAC384_SHA512,
}
_PRIV = {
    PrivProtocol.AES: config.USM_PRIV_CFB128_AES,
    PrivProtocol.AES192: config.USM_PRIV_CFB192_AES,
    PrivProtocol.AES256: config.USM_PRIV_CFB256_AES,
}
_LEVELS = {
    "noAuthNoPriv": SecurityLevel.NO_AUTH_NO_PRIV,
    "authNoPriv": SecurityLevel.AUTH_NO_PRIV,
    "authPriv": SecurityLevel.AUTH_PRIV,
    1: SecurityLevel.NO_AUTH_NO_PRIV,
    2: SecurityLevel.AUTH_NO_PRIV,
    3: SecurityLevel.AUTH_PRIV,
}
_RANK = {level: rank for rank, level in enumerate(SecurityLevel)}
_VERSIONS = {0: SnmpVersion.V1, 1: SnmpVersion.V2C, 3: SnmpVersion.V3}

# pysnmp's counters of messages it refused before any application saw them.
ENGINE_COUNTERS = {
    "bad_community": ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    "bad_version": ("__SNMPv2-MIB", "snmpInBadVersions"),
    "malformed": ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    "invalid_message": ("__SNMP-MPD-MIB", "snmpInvalidMsgs"),
    "unknown_security_model": ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"),
    "unknown_user": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    "wrong_digest": ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    "unsupported_security_level": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
    "decryption_error": ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
    # Also part of every INFORM sender's normal engine discovery.
    "unknown_engine_id": ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"),
    "not_in_time_window": ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"),
}


@dataclass(frozen=True)
class ReceiverPolicy:
    """Who may send: communities (v1/v2c) and v3 users, and the least security level."""

    communities: tuple[str, ...]
    users: tuple[SnmpUser, ...]
    auth_priv_only: bool = False

    def refusal(self, notification: Notification) -> str | None:
        """Why an authenticated notification is still refused, or None."""
        level = notification.security_level
        if self.auth_priv_only and level is not SecurityLevel.AUTH_PRIV:
            return "auth_priv_required"
        if notification.version is SnmpVersion.V3:
            user = next((u for u in self.users if u.name == notification.security_name), None)
            if user is not None and _RANK[level] < _RANK[user.level]:
                return "security_level_too_low"
        return None


Respond = Callable[[], None]
Encoded = Callable[[], bytes]
NotificationHandler = Callable[[Notification, Respond | None, Encoded], None]


class AckAfterStoreReceiver(ntfrcv.NotificationReceiver):  # type: ignore[misc]  # untyped
    """pysnmp's NotificationReceiver, except that the INFORM response is handed to the
    handler to send once the notification is stored, instead of being sent first."""

    def __init__(self, snmp_engine: engine.SnmpEngine, handler: NotificationHandler) -> None:
        super().__init__(snmp_engine, lambda *args: None)
        self._handler = handler

    def process_pdu(
        self,
        snmpEngine: engine.SnmpEngine,
        messageProcessingModel: int,
        securityModel: int,
        securityName: Any,
        securityLevel: Any,
        contextEngineId: Any,
        contextName: Any,
        pduVersion: int,
        PDU: Any,
        maxSizeResponseScopedPDU: int,
        stateReference: Any,
    ) -> None:
        original = PDU
        if messageProcessingModel == 0:
            PDU = rfc2576.v1_to_v2(PDU)
        context = snmpEngine.observer.get_execution_context("rfc3412.receiveMessage:request")
        address = context.get("transportAddress") or ("", 0)
        confirmed = PDU.tagSet in rfc3411.CONFIRMED_CLASS_PDUS
        version = _VERSIONS.get(int(messageProcessingModel), SnmpVersion.V2C)
        notification = Notification(
            version=version,
            pdu=NotificationPdu.INFORM if confirmed else NotificationPdu.TRAP,
            security_name=str(securityName),
            security_level=_LEVELS.get(securityLevel, SecurityLevel.NO_AUTH_NO_PRIV),
            engine_id=bytes(contextEngineId) if version is SnmpVersion.V3 else None,
            request_id=0 if version is SnmpVersion.V1 else int(v2c.apiPDU.get_request_id(PDU)),
            sender=str(address[0]),
            sender_port=int(address[1]),
            varbinds=[(tuple(oid), value) for oid, value in v2c.apiPDU.get_varbinds(PDU)],
        )
        respond: Respond | None = None
        if confirmed:

            def respond() -> None:
                response = v2c.apiPDU.get_response(PDU)
                v2c.apiPDU.set_error_status(response, "noError")
                v2c.apiPDU.set_error_index(response, 0)
                v2c.apiPDU.set_varbinds(response, v2c.apiPDU.get_varbinds(PDU))
                if messageProcessingModel == 0:
                    response = rfc2576.v2_to_v1(response, original)
                try:
                    snmpEngine.message_dispatcher.return_response_pdu(
                        snmpEngine, messageProcessingModel, securityModel, securityName,
                        securityLevel, contextEngineId, contextName, pduVersion, response,
                        maxSizeResponseScopedPDU, stateReference, {},
                    )  # fmt: skip
                except error.StatusInformation as status:
                    log.warning("INFORM response not sent: %s", status)

        # Encoded only for a dead letter: BER encoding costs as much as the rest of a trap.
        self._handler(notification, respond, lambda: bytes(encoder.encode(PDU)))


class _FastPathTransport(udp.UdpAsyncioTransport):  # type: ignore[misc]  # untyped
    """pysnmp's UDP transport, offering each datagram to a fast path first."""

    def __init__(self, fast_path: Callable[[bytes, Any, Any], bool]) -> None:
        super().__init__()
        self._fast_path = fast_path

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        if not self._fast_path(datagram, transportAddress, self):
            super().datagram_received(datagram, transportAddress)


def _udp_socket(host: str, port: int, receive_buffer: int) -> socket.socket:
    """The receiver's socket, its kernel buffer as large as allowed: a trap storm then
    waits in the kernel instead of being dropped (drops show in Udp_RcvbufErrors)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class BatchPublisher(Protocol):
    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]: ...


@dataclass(frozen=True)
class _Received:
    notification: Notification
    respond: Respond | None
    pdu: Encoded
    at: datetime


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
    ) -> None:
        self._publisher = publisher
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
        self._closing = False
        self._community_index = {
            community.encode(): index + 1 for index, community in enumerate(policy.communities)
        }
        self._engine: engine.SnmpEngine | None = None
        self._counted: dict[str, int] = {}
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
        (engine_id,) = self._engine.get_mib_builder().import_symbols(
            "__SNMP-FRAMEWORK-MIB", "snmpEngineID"
        )
        return bytes(engine_id.syntax)

    async def start(self, host: str, port: int, receive_buffer: int) -> None:
        """Configure the engine and listen. Call from the running loop."""
        if self._engine_id is not None:
            snmp_engine = engine.SnmpEngine(snmpEngineID=v2c.OctetString(self._engine_id))
        else:
            snmp_engine = engine.SnmpEngine()
        self._engine = snmp_engine
        self.socket = _udp_socket(host, port, receive_buffer)
        transport = _FastPathTransport(self._v2c_fast_path).open_server_mode(sock=self.socket)
        config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport)
        for index, community in enumerate(self._policy.communities):
            config.add_v1_system(snmp_engine, f"community-{index + 1}", community)
        for user in self._policy.users:
            for engine_id in (None, *user.engine_ids):
                config.add_v3_user(
                    snmp_engine,
                    user.name,
                    _AUTH[user.auth],
                    user.auth_key,
                    _PRIV[user.priv] if user.priv else config.USM_PRIV_NONE,
                    user.priv_key,
                    securityEngineId=(
                        v2c.OctetString(hexValue=engine_id) if engine_id is not None else None
                    ),
                )
        AckAfterStoreReceiver(snmp_engine, self._received)
        self._workers = [asyncio.ensure_future(self._store_batches()) for _ in range(STORERS)]
        self._source = f"snmp://{host}:{self.address[1]}"
        await asyncio.sleep(0)  # let the transport's endpoint open

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def drain(self) -> None:
        """Store what has arrived, then stop storing (after :meth:`stop`)."""
        self._closing = True
        self._arrived.set()
        await asyncio.gather(*self._workers)

    def count_engine_rejections(self) -> None:
        """Move pysnmp's refusal counters into the ingest metric (call periodically)."""
        if self._engine is None:
            return
        builder = self._engine.get_mib_builder()
        for reason, (module, symbol) in ENGINE_COUNTERS.items():
            try:
                (counter,) = builder.import_symbols(module, symbol)
            except error.SmiError:
                continue
            value = int(counter.syntax)
            delta = value - self._counted.get(reason, 0)
            if delta > 0:
                metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", reason).inc(delta)
            self._counted[reason] = value

    def _v2c_fast_path(self, datagram: bytes, address: Any, transport: Any) -> bool:
        """Take a v2c trap or INFORM without pysnmp (see snmp_fastpath); False: not one."""
        parsed = parse_v2c_notification(datagram)
        if parsed is None:
            return False
        index = self._community_index.get(parsed.community)
        if index is None:
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "bad_community").inc()
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
        refusal = self._policy.refusal(notification)
        if refusal is not None:
            log.info("refused a %s notification from %s: %s", notification.version,
                     notification.sender, refusal)  # fmt: skip
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", refusal).inc()
            return
        if len(self._waiting) + self._storing >= self._max_in_flight:
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "overloaded").inc()
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
                    metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "internal_error").inc(
                        len(batch)
                    )
                finally:
                    self._storing -= len(batch)
            if self._closing:
                return
            self._arrived.clear()

    async def _store(self, batch: list[_Received]) -> None:
        events: list[tuple[_Received, TrapReceived]] = []
        for received in batch:
            try:
                event = trap_event(
                    received.notification, self._mibs, self._devices, received.at, self._source
                )
            except (NotificationError, ValueError) as problem:
                field = problem.field if isinstance(problem, NotificationError) else None
                await self._dead_letter(
                    received.pdu(), str(problem), field, received.at, received.respond
                )
                continue
            events.append((received, event))
        outcomes = await self._publisher.publish_many(
            TICKET_EVENTS, [(e.data.ticket_id.encode(), to_json(e)) for _, e in events]
        )
        acked_at = self._clock.now()
        failures = [failure for failure in outcomes if failure is not None]
        if failures:
            # INFORMs stay unanswered, so their senders retry; traps are lost, counted.
            log.warning("%d of %d notifications not stored: %s", len(failures), len(outcomes),
                        failures[0])  # fmt: skip
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "kafka_unavailable").inc(
                len(failures)
            )
        for (received, _), failure in zip(events, outcomes, strict=True):
            if failure is not None:
                continue
            elapsed = (acked_at - received.at).total_seconds()
            metrics.INGEST_ACK_SECONDS.labels(SOURCE).observe(max(0.0, elapsed))
            metrics.EVENTS_INGESTED.labels(
                SOURCE, "accepted", received.notification.pdu.value
            ).inc()
            if received.respond is not None:
                received.respond()

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
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "kafka_unavailable").inc()
            return
        metrics.EVENTS_INGESTED.labels(SOURCE, "dead_lettered", "unusable").inc()
        if respond is not None:
            respond()


def engine_id_option(text: str) -> bytes | None:
    """The receiver's snmpEngineID from its hex setting (empty: pysnmp's default)."""
    if not text:
        return None
    return bytes.fromhex(text.lower().removeprefix("0x"))
