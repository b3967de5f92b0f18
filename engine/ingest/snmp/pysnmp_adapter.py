"""pysnmp, adapted: the engine's configuration from the receiver's policy, an INFORM
answered only when the receiver says so, a fast path in front of pysnmp's transport, and
pysnmp's refusal counters.

pysnmp 7's own names (camelCase parameters, untyped classes) stay inside this module.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

from pyasn1.codec.ber import encoder
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import error, rfc3411
from pysnmp.proto.api import v2c
from pysnmp.proto.proxy import rfc2576

from engine.contract import NotificationPdu, SecurityLevel, SnmpVersion
from engine.ingest.snmp.trap_event import Notification
from engine.ingest.snmp.users import AuthProtocol, PrivProtocol, SnmpUser
from engine.metrics import IngestReason

log = logging.getLogger(__name__)

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
_VERSIONS = {0: SnmpVersion.V1, 1: SnmpVersion.V2C, 3: SnmpVersion.V3}

# pysnmp's counters of messages it refused before any application saw them.
ENGINE_COUNTERS: dict[IngestReason, tuple[str, str]] = {
    IngestReason.BAD_COMMUNITY: ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    IngestReason.BAD_VERSION: ("__SNMPv2-MIB", "snmpInBadVersions"),
    IngestReason.MALFORMED: ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    IngestReason.INVALID_MESSAGE: ("__SNMP-MPD-MIB", "snmpInvalidMsgs"),
    IngestReason.UNKNOWN_SECURITY_MODEL: ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"),
    IngestReason.UNKNOWN_USER: ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    IngestReason.WRONG_DIGEST: ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    IngestReason.UNSUPPORTED_SECURITY_LEVEL: (
        "__SNMP-USER-BASED-SM-MIB",
        "usmStatsUnsupportedSecLevels",
    ),
    IngestReason.DECRYPTION_ERROR: ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
    # Also part of every INFORM sender's normal engine discovery.
    IngestReason.UNKNOWN_ENGINE_ID: ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs"),
    IngestReason.NOT_IN_TIME_WINDOW: ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows"),
}


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


class FastPathTransport(udp.UdpAsyncioTransport):  # type: ignore[misc]  # untyped
    """pysnmp's UDP transport, offering each datagram to a fast path first. Whatever
    either raises for one datagram (pyasn1's IndexError, OverflowError or TypeError on a
    crafted message, a RecursionError) is handed to ``failed``, and the next datagram is
    read. pysnmp's own transport hands a datagram on later, in a callback of the loop,
    where what its decoders raise would reach the loop's handler uncounted: this one hands
    it on at once."""

    def __init__(
        self, fast_path: Callable[[bytes, Any, Any], bool], failed: Callable[[Exception], None]
    ) -> None:
        super().__init__()
        self._fast_path = fast_path
        self._failed = failed

    def datagram_received(self, datagram: bytes, transportAddress: Any) -> None:
        try:
            if not self._fast_path(datagram, transportAddress, self):
                self._callback_function(self, transportAddress, datagram)
        except Exception as error:  # one datagram's, never the receiver's
            self._failed(error)


# Python's socket module does not name it; Linux's value (asm-generic/socket.h).
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform == "linux" else None)


def udp_socket(host: str, port: int, receive_buffer: int) -> socket.socket:
    """The receiver's socket, its kernel buffer as large as allowed: a trap storm then
    waits in the kernel instead of being dropped (drops show in Udp_RcvbufErrors).

    The kernel caps SO_RCVBUF at net.core.rmem_max; a process with CAP_NET_ADMIN (root,
    or the unit's AmbientCapabilities) may go past it with SO_RCVBUFFORCE, as journald does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    # Linux reports twice what was asked (its bookkeeping overhead) when it grants it all.
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if _SO_RCVBUFFORCE is not None and granted < receive_buffer:
        with contextlib.suppress(OSError):  # not permitted: keep what the kernel granted
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, receive_buffer)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def new_engine(
    engine_id: bytes | None,
    sock: socket.socket,
    fast_path: Callable[[bytes, Any, Any], bool],
    communities: tuple[str, ...],
    users: tuple[SnmpUser, ...],
    handler: NotificationHandler,
    failed: Callable[[Exception], None] = lambda error: None,
) -> engine.SnmpEngine:
    """An SnmpEngine on ``sock`` knowing the communities (security names ``community-N``)
    and the v3 users (each for the receiver's own engine id and every listed sender's),
    handing notifications to ``handler`` (and to ``failed`` what a datagram made the
    decoders raise). Call from the running loop."""
    if engine_id is not None:
        snmp_engine = engine.SnmpEngine(snmpEngineID=v2c.OctetString(engine_id))
    else:
        snmp_engine = engine.SnmpEngine()
    transport = FastPathTransport(fast_path, failed).open_server_mode(sock=sock)
    config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport)
    for index, community in enumerate(communities):
        config.add_v1_system(snmp_engine, f"community-{index + 1}", community)
    for user in users:
        for sender_id in (None, *user.engine_ids):
            config.add_v3_user(
                snmp_engine,
                user.name,
                _AUTH[user.auth],
                user.auth_key,
                _PRIV[user.priv] if user.priv else config.USM_PRIV_NONE,
                user.priv_key,
                securityEngineId=(
                    v2c.OctetString(hexValue=sender_id) if sender_id is not None else None
                ),
            )
    AckAfterStoreReceiver(snmp_engine, handler)
    return snmp_engine


def engine_id_of(snmp_engine: engine.SnmpEngine) -> bytes:
    (engine_id,) = snmp_engine.get_mib_builder().import_symbols(
        "__SNMP-FRAMEWORK-MIB", "snmpEngineID"
    )
    return bytes(engine_id.syntax)


def refusal_counters(snmp_engine: engine.SnmpEngine) -> dict[IngestReason, int]:
    """pysnmp's counters of refused messages, by the receiver's reason names."""
    builder = snmp_engine.get_mib_builder()
    counted = {}
    for reason, (module, symbol) in ENGINE_COUNTERS.items():
        try:
            (counter,) = builder.import_symbols(module, symbol)
        except error.SmiError:
            continue
        counted[reason] = int(counter.syntax)
    return counted
