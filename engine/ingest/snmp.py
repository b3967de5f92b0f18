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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from engine.ingest.publisher import Publisher
from engine.ingest.snmp_users import AuthProtocol, PrivProtocol, SnmpUser
from engine.ingest.trap_event import Notification, NotificationError, trap_event
from engine.models import NotificationPdu, SecurityLevel, SnmpVersion, to_json
from engine.topics import DEAD_LETTERS, TICKET_EVENTS

log = logging.getLogger(__name__)
SOURCE = "snmp"

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
NotificationHandler = Callable[[Notification, Respond | None, bytes], None]


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

        self._handler(notification, respond, encoder.encode(PDU))


def _udp_socket(host: str, port: int, receive_buffer: int) -> socket.socket:
    """The receiver's socket, its kernel buffer as large as allowed: a trap storm then
    waits in the kernel instead of being dropped (drops show in Udp_RcvbufErrors)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class SnmpReceiver:
    """One SnmpEngine on one UDP socket, publishing what it receives."""

    def __init__(
        self,
        publisher: Publisher,
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
        self._in_flight: set[asyncio.Task[None]] = set()
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
        transport = udp.UdpAsyncioTransport().open_server_mode(sock=self.socket)
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
        self._source = f"snmp://{host}:{self.address[1]}"
        await asyncio.sleep(0)  # let the transport's endpoint open

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def drain(self) -> None:
        """Wait for the notifications being published."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

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

    def _received(self, notification: Notification, respond: Respond | None, pdu: bytes) -> None:
        refusal = self._policy.refusal(notification)
        if refusal is not None:
            log.info("refused a %s notification from %s: %s", notification.version,
                     notification.sender, refusal)  # fmt: skip
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", refusal).inc()
            return
        if len(self._in_flight) >= self._max_in_flight:
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "overloaded").inc()
            return
        task = asyncio.ensure_future(self._store(notification, respond, pdu))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _store(self, notification: Notification, respond: Respond | None, pdu: bytes) -> None:
        received_at = self._clock.now()
        try:
            event = trap_event(notification, self._mibs, self._devices, received_at, self._source)
        except (NotificationError, ValueError) as problem:
            field = problem.field if isinstance(problem, NotificationError) else None
            await self._dead_letter(pdu, str(problem), field, received_at, respond)
            return
        try:
            await self._publisher.publish(
                TICKET_EVENTS, event.data.ticket_id.encode(), to_json(event)
            )
        except PublishError as problem:
            # An INFORM stays unanswered, so its sender retries; a trap is lost, counted.
            log.warning("%s from %s not stored: %s", notification.pdu, notification.sender, problem)
            metrics.EVENTS_INGESTED.labels(SOURCE, "rejected", "kafka_unavailable").inc()
            return
        elapsed = (self._clock.now() - received_at).total_seconds()
        metrics.INGEST_ACK_SECONDS.labels(SOURCE).observe(max(0.0, elapsed))
        metrics.EVENTS_INGESTED.labels(SOURCE, "accepted", notification.pdu.value).inc()
        if respond is not None:
            respond()

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
