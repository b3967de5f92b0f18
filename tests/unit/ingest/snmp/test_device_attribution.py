"""Which device a notification is: the address it claims (snmpTrapAddress.0, a v1 trap's
agent-addr) picks the device only when it comes through a forwarder the directory lists."""

from __future__ import annotations

import pytest
from pysnmp.proto.api import v2c

from engine.contract import AlarmTransition, TrapReceived
from engine.ingest.snmp.devices import Attribution, DeviceDirectory, DeviceEntry, attribute
from engine.ingest.snmp.trap_event import SNMP_TRAP_ADDRESS, trap_event
from tests.unit.ingest.snmp.trap_samples import (
    IF_INDEX,
    IF_OPER_STATUS,
    LINK_DOWN,
    LINK_UP,
    MIBS,
    T0,
    notification,
)

DEVICES = DeviceDirectory(
    [
        DeviceEntry(address="192.0.2.10", name="pbx-mty-1", customer="acme", role="pbx"),
        DeviceEntry(address="192.0.2.11", name="gw-mty-1", customer="acme"),
        DeviceEntry(address="10.0.0.7", name="trap-forwarder", role="forwarder"),
        DeviceEntry(address="10.1.0.0/16", name="forwarders", role="forwarder"),
    ]
)
PBX, GW, FORWARDER = (DEVICES.lookup(a) for a in ("192.0.2.10", "192.0.2.11", "10.0.0.7"))


@pytest.mark.parametrize(
    ("sender", "claimed", "expected"),
    [
        ("192.0.2.10", None, Attribution(PBX, None)),  # nothing claimed: the sender
        ("192.0.2.10", "192.0.2.10", Attribution(PBX, "192.0.2.10")),  # its own address
        ("10.0.0.7", "192.0.2.10", Attribution(PBX, "192.0.2.10")),  # through a forwarder
        ("10.1.4.2", "192.0.2.11", Attribution(GW, "192.0.2.11")),  # a forwarders' network
        ("10.0.0.7", "203.0.113.5", Attribution(FORWARDER, "203.0.113.5")),  # unlisted agent
        ("10.0.0.7", None, Attribution(FORWARDER, None)),  # a forwarder's own trap
        ("192.0.2.11", "192.0.2.10", Attribution(GW, None, "192.0.2.10")),  # a device lying
        ("203.0.113.9", "192.0.2.10", Attribution(None, None, "192.0.2.10")),  # a stranger
    ],
)
def test_a_claimed_address_is_trusted_only_from_a_forwarder(
    sender: str, claimed: str | None, expected: Attribution
) -> None:
    assert attribute(sender, claimed, DEVICES) == expected


def link(up: bool, sender: str, claimed: str | None = None, request_id: int = 1) -> TrapReceived:
    varbinds: list[tuple[str, object]] = [
        (f"{IF_INDEX}.3", v2c.Integer(3)),
        (f"{IF_OPER_STATUS}.3", v2c.Integer(1 if up else 2)),
    ]
    if claimed is not None:
        varbinds.append((".".join(map(str, SNMP_TRAP_ADDRESS)), v2c.IpAddress(claimed)))
    sent = notification(
        LINK_UP if up else LINK_DOWN, *varbinds, sender=sender, request_id=request_id
    )
    return trap_event(sent, MIBS, DEVICES, T0, "snmp://test")


def test_a_forged_link_up_from_another_address_cannot_clear_the_devices_alarm() -> None:
    down = link(up=False, sender="192.0.2.10")
    forged = link(up=True, sender="203.0.113.9", claimed="192.0.2.10", request_id=2)

    assert forged.data.transition is AlarmTransition.CLEARED
    assert forged.data.ticket_id != down.data.ticket_id  # not the pbx's alarm
    assert forged.data.alarm_key == "203.0.113.9|IF-MIB::link|3"
    assert forged.data.device is None and forged.data.agent_address is None
    assert forged.data.claimed_agent_address == "192.0.2.10"


def test_the_same_link_up_through_a_forwarder_clears_it() -> None:
    down = link(up=False, sender="192.0.2.10")
    relayed = link(up=True, sender="10.0.0.7", claimed="192.0.2.10", request_id=2)

    assert relayed.data.ticket_id == down.data.ticket_id
    assert relayed.data.agent_address == "192.0.2.10"
    assert relayed.data.claimed_agent_address is None
