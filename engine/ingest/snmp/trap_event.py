"""From a received SNMP notification to its ``trap.received`` event.

SNMPv1 traps arrive already converted the RFC 3584 way (pysnmp's ``v1_to_v2``): the trap
OID from generic/specific trap and enterprise, ``snmpTrapAddress`` from agent-addr,
``snmpTrapEnterprise``; so rules see one shape whatever the version. The community never
travels: ``snmpTrapCommunity`` is left out (it is a password in clear).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyasn1.type import univ
from pysnmp.proto import rfc1902

from engine.contract import (
    NotificationPdu,
    SecurityLevel,
    SnmpVersion,
    TrapFacts,
    TrapReceived,
    TrapReceivedData,
    Varbind,
    alarm_identity,
)
from engine.contract.identity import event_id
from engine.errors import EngineError
from engine.ingest.snmp.devices import DeviceDirectory, attribute
from engine.ingest.snmp.fastpath import Decoded
from engine.ingest.snmp.mibs import MibResolver, Oid, oid_text, parse_oid

SYS_UPTIME: Oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ADDRESS: Oid = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
SNMP_TRAP_COMMUNITY: Oid = (1, 3, 6, 1, 6, 3, 18, 1, 4, 0)


class NotificationError(EngineError, ValueError):
    """A notification that cannot become an event (e.g. no snmpTrapOID.0). Also a
    ValueError: callers catch bad input as one, like the value errors the receiver
    dead-letters beside it."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class Notification:
    """What the receiver took from one authenticated SNMP message."""

    version: SnmpVersion
    pdu: NotificationPdu
    security_name: str
    security_level: SecurityLevel
    engine_id: bytes | None
    request_id: int
    sender: str
    sender_port: int
    varbinds: Sequence[tuple[Oid, Any]]


def typed_value(value: Any) -> tuple[str | int | float | None, str]:
    """A varbind value as JSON-friendly data and its SNMP type name."""
    if isinstance(value, Decoded):
        return value.value, value.syntax
    syntax = type(value).__name__
    if syntax == "Integer":
        syntax = "Integer32"  # the same type on the wire; SMIv2 names it Integer32
    if isinstance(value, rfc1902.IpAddress) or syntax == "IpAddress":
        return ".".join(str(octet) for octet in value.asOctets()), "IpAddress"
    if isinstance(value, univ.ObjectIdentifier):
        return oid_text(tuple(value)), "ObjectIdentifier"
    if isinstance(value, univ.Integer):
        return int(value), syntax
    if isinstance(value, univ.Null):  # also noSuchObject, endOfMibView
        return None, syntax
    if isinstance(value, univ.OctetString):
        raw = value.asOctets()
        if isinstance(value, rfc1902.Opaque | rfc1902.Bits):
            return "0x" + raw.hex(), syntax
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + raw.hex(), syntax
        printable = all(ch.isprintable() or ch in "\r\n\t" for ch in text)
        return (text if printable else "0x" + raw.hex()), syntax
    return str(value), syntax


def to_varbind(oid: Oid, value: Any, mibs: MibResolver) -> Varbind:
    python_value, syntax = typed_value(value)
    label = None
    if isinstance(python_value, int) and syntax not in ("TimeTicks", "Counter32", "Counter64"):
        label = mibs.value_label(oid, python_value)
    elif syntax == "ObjectIdentifier" and isinstance(python_value, str):
        label = mibs.object_name(tuple(int(p) for p in python_value.split(".") if p))
    return Varbind(
        oid=oid_text(oid),
        name=mibs.object_name(oid),
        value=python_value,
        syntax=syntax,
        label=label,
    )


def _fingerprint(notification: Notification, trap_oid: Oid, varbinds: tuple[Varbind, ...]) -> str:
    """Identity of one notification: a retransmitted INFORM (same request id, same
    varbinds) has the same; two traps of a storm differ by request id or uptime."""
    sender = notification.engine_id.hex() if notification.engine_id else notification.sender
    uptime = typed_value(dict(notification.varbinds).get(SYS_UPTIME))[0]
    parts = [sender, str(notification.request_id), oid_text(trap_oid), str(uptime)]
    parts.extend(f"{v.oid}={v.value!r}" for v in varbinds)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def trap_event(
    notification: Notification,
    mibs: MibResolver,
    devices: DeviceDirectory,
    received_at: datetime,
    source: str,
) -> TrapReceived:
    bound = dict(notification.varbinds)
    raw_trap_oid, syntax = typed_value(bound.get(SNMP_TRAP_OID))
    if syntax != "ObjectIdentifier" or not isinstance(raw_trap_oid, str):
        raise NotificationError("the notification has no snmpTrapOID.0 varbind", "snmpTrapOID.0")
    trap_oid = mibs.canonical_trap_oid(parse_oid(raw_trap_oid))
    uptime = typed_value(bound.get(SYS_UPTIME))[0]
    agent = bound.get(SNMP_TRAP_ADDRESS)
    claimed = typed_value(agent)[0] if agent is not None else None
    attribution = attribute(notification.sender, str(claimed) if claimed else None, devices)
    device, agent_address = attribution.device, attribution.agent_address
    skipped = (SYS_UPTIME, SNMP_TRAP_OID, SNMP_TRAP_COMMUNITY)
    trap = TrapFacts(
        oid=oid_text(trap_oid),
        name=mibs.notification_name(trap_oid),
        varbinds=tuple(
            to_varbind(oid, value, mibs)
            for oid, value in notification.varbinds
            if oid not in skipped
        ),
        device_role=device.role if device is not None else None,
    )
    where = device.name if device is not None else str(agent_address or notification.sender)
    alarm = alarm_identity.identify(trap, where)
    return TrapReceived(
        event_id=event_id("trap", _fingerprint(notification, trap_oid, trap.varbinds)),
        occurred_at=received_at,
        source=source,
        data=TrapReceivedData(
            ticket_id=alarm.ticket_id,
            alarm_key=alarm.key,
            transition=alarm.transition,
            sender=notification.sender,
            sender_port=notification.sender_port,
            agent_address=agent_address,
            claimed_agent_address=attribution.claimed_agent_address,
            version=notification.version,
            pdu=notification.pdu,
            security_name=notification.security_name,
            security_level=notification.security_level,
            engine_id=notification.engine_id.hex() if notification.engine_id else None,
            request_id=notification.request_id,
            uptime_hundredths=uptime if isinstance(uptime, int) else None,
            trap=trap,
            device=device,
        ),
    )
