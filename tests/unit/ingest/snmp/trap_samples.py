"""Notifications as the receiver hands them over, for the SNMP unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pysnmp.proto.api import v2c

from engine.contract import NotificationPdu, SecurityLevel, SnmpVersion, TrapReceived
from engine.ingest.snmp.devices import DeviceDirectory, DeviceEntry
from engine.ingest.snmp.mibs import MibResolver, parse_oid
from engine.ingest.snmp.trap_event import SNMP_TRAP_OID, SYS_UPTIME, Notification, trap_event

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
MIBS = MibResolver()
DEVICES = DeviceDirectory(
    [
        DeviceEntry(address="192.0.2.10", name="pbx-mty-1", customer="acme", role="pbx"),
        DeviceEntry(address="192.0.2.0/24", name="lan-acme", customer="acme", role="switch"),
        DeviceEntry(address="198.51.100.7", name="ups-1", customer="acme", role="ups"),
        DeviceEntry(address="10.9.9.9", name="trap-forwarder", customer="acme", role="forwarder"),
    ]
)
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
LINK_UP = "1.3.6.1.6.3.1.1.5.4"
COLD_START = "1.3.6.1.6.3.1.1.5.1"
IF_INDEX = "1.3.6.1.2.1.2.2.1.1"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"


def notification(
    trap_oid: str,
    *varbinds: tuple[str, Any],
    sender: str = "192.0.2.10",
    request_id: int = 1,
    uptime: int = 1000,
    version: SnmpVersion = SnmpVersion.V2C,
    pdu: NotificationPdu = NotificationPdu.TRAP,
) -> Notification:
    bound: list[tuple[tuple[int, ...], Any]] = [
        (SYS_UPTIME, v2c.TimeTicks(uptime)),
        (SNMP_TRAP_OID, v2c.ObjectIdentifier(trap_oid)),
    ]
    bound.extend((parse_oid(oid), value) for oid, value in varbinds)
    return Notification(
        version=version,
        pdu=pdu,
        security_name="community-1",
        security_level=SecurityLevel.NO_AUTH_NO_PRIV,
        engine_id=None,
        request_id=request_id,
        sender=sender,
        sender_port=40000,
        varbinds=bound,
    )


def link_event(up: bool, if_index: int = 3, request_id: int = 1, at: datetime = T0) -> TrapReceived:
    trap = LINK_UP if up else LINK_DOWN
    status = 1 if up else 2
    return trap_event(
        notification(
            trap,
            (f"{IF_INDEX}.{if_index}", v2c.Integer(if_index)),
            (f"{IF_OPER_STATUS}.{if_index}", v2c.Integer(status)),
            (f"{IF_DESCR}.{if_index}", v2c.OctetString(b"E1 trunk 0/1")),
            request_id=request_id,
        ),
        MIBS,
        DEVICES,
        at,
        "snmp://test",
    )
