"""From a notification to its trap.received event: names, typed varbinds, the device,
RFC 3584's shape for v1, and deterministic ids."""

from __future__ import annotations

import pytest
from pysnmp.proto.api import v1, v2c
from pysnmp.proto.proxy import rfc2576

from engine.contract import AlarmTransition, EventKind, SnmpVersion
from engine.ingest.snmp.trap_event import (
    SNMP_TRAP_COMMUNITY,
    Notification,
    NotificationError,
    trap_event,
    typed_value,
)
from tests.unit.ingest.snmp.trap_samples import (
    COLD_START,
    DEVICES,
    IF_INDEX,
    MIBS,
    T0,
    link_event,
    notification,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (v2c.Integer(3), (3, "Integer32")),
        (v2c.Integer32(-1), (-1, "Integer32")),
        (v2c.Counter32(7), (7, "Counter32")),
        (v2c.Counter64(2**40), (2**40, "Counter64")),
        (v2c.Gauge32(9), (9, "Gauge32")),
        (v2c.TimeTicks(12345), (12345, "TimeTicks")),
        (v2c.OctetString(b"E1 trunk"), ("E1 trunk", "OctetString")),
        (v2c.OctetString("Caída".encode()), ("Caída", "OctetString")),
        (v2c.OctetString(b"\x00\x1b\x21\xff"), ("0x001b21ff", "OctetString")),
        (v2c.IpAddress("192.0.2.1"), ("192.0.2.1", "IpAddress")),
        (v2c.ObjectIdentifier("1.3.6.1.4.1.9"), ("1.3.6.1.4.1.9", "ObjectIdentifier")),
        (v2c.Null(""), (None, "Null")),
    ],
)
def test_values_keep_their_type(value: object, expected: tuple[object, str]) -> None:
    assert typed_value(value) == expected


def test_a_link_down_names_everything_and_finds_its_device() -> None:
    event = link_event(up=False)
    data = event.data

    assert event.kind is EventKind.TRAP_RECEIVED
    assert data.trap.name == "IF-MIB::linkDown"
    assert data.trap.device_role == "pbx"
    assert data.device is not None and data.device.name == "pbx-mty-1"
    assert data.device.customer_id == "acme"
    assert data.uptime_hundredths == 1000
    assert data.alarm_key == "pbx-mty-1|IF-MIB::link|3"
    assert data.transition is AlarmTransition.RAISED
    by_name = {v.name: v for v in data.trap.varbinds}
    assert by_name["IF-MIB::ifIndex"].value == 3
    assert by_name["IF-MIB::ifOperStatus"].label == "down"
    assert by_name["IF-MIB::ifDescr"].value == "E1 trunk 0/1"
    assert by_name["IF-MIB::ifDescr"].syntax == "OctetString"


def test_raise_and_clear_land_on_one_ticket() -> None:
    assert link_event(up=False).data.ticket_id == link_event(up=True).data.ticket_id
    assert link_event(up=True).data.transition is AlarmTransition.CLEARED


def test_the_same_notification_has_the_same_event_id_and_another_does_not() -> None:
    # A retransmitted INFORM repeats its request id; a storm's traps each have their own.
    assert (
        link_event(up=False, request_id=5).event_id == link_event(up=False, request_id=5).event_id
    )
    assert (
        link_event(up=False, request_id=5).event_id != link_event(up=False, request_id=6).event_id
    )


def test_an_unknown_trap_is_still_an_event_with_numeric_oids() -> None:
    event = trap_event(
        notification("1.3.6.1.4.1.99999.0.1", ("1.3.6.1.4.1.99999.1.0", v2c.Integer(1))),
        MIBS,
        DEVICES,
        T0,
        "snmp://test",
    )

    assert event.data.trap.oid == "1.3.6.1.4.1.99999.0.1"
    assert event.data.trap.name is None
    assert event.data.trap.varbinds[0].name is None
    assert event.data.transition is AlarmTransition.EVENT


def test_an_unknown_address_has_no_device_and_is_identified_by_address() -> None:
    event = trap_event(notification(COLD_START, sender="203.0.113.9"), MIBS, DEVICES, T0, "t")

    assert event.data.device is None
    assert event.data.alarm_key == "203.0.113.9|SNMPv2-MIB::restart|"


def test_a_network_entry_matches_and_the_most_specific_wins() -> None:
    on_lan = trap_event(notification(COLD_START, sender="192.0.2.77"), MIBS, DEVICES, T0, "t")
    pbx = trap_event(notification(COLD_START, sender="192.0.2.10"), MIBS, DEVICES, T0, "t")

    assert on_lan.data.device is not None and on_lan.data.device.name == "lan-acme"
    assert pbx.data.device is not None and pbx.data.device.name == "pbx-mty-1"


def test_a_notification_without_trap_oid_is_refused_naming_the_field() -> None:
    bare = Notification(**{**notification(COLD_START).__dict__, "varbinds": []})

    with pytest.raises(NotificationError) as raised:
        trap_event(bare, MIBS, DEVICES, T0, "t")

    assert raised.value.field == "snmpTrapOID.0"


def v1_trap(enterprise: str, generic: int, specific: int, agent: str) -> Notification:
    pdu = v1.TrapPDU()
    v1.apiTrapPDU.set_defaults(pdu)
    v1.apiTrapPDU.set_enterprise(pdu, enterprise)
    v1.apiTrapPDU.set_agent_address(pdu, agent)
    v1.apiTrapPDU.set_generic_trap(pdu, generic)
    v1.apiTrapPDU.set_specific_trap(pdu, specific)
    v1.apiTrapPDU.set_varbinds(pdu, [(f"{IF_INDEX}.3", v1.Integer(3))])
    converted = rfc2576.v1_to_v2(pdu, snmpTrapCommunity="secret")
    base = notification(COLD_START, version=SnmpVersion.V1, request_id=0, sender="10.9.9.9")
    return Notification(
        **{
            **base.__dict__,
            "varbinds": [(tuple(o), v) for o, v in v2c.apiPDU.get_varbinds(converted)],
        }
    )


def test_v1_traps_take_the_rfc3584_shape_and_never_carry_the_community() -> None:
    event = trap_event(v1_trap("1.3.6.1.4.1.8072", 2, 0, "192.0.2.10"), MIBS, DEVICES, T0, "t")
    data = event.data

    assert data.trap.name == "IF-MIB::linkDown"  # generic 2 is linkDown
    assert data.agent_address == "192.0.2.10"
    assert data.device is not None and data.device.name == "pbx-mty-1"  # by agent-addr
    assert data.alarm_key == "pbx-mty-1|IF-MIB::link|3"
    names = [v.name for v in data.trap.varbinds]
    assert "SNMPv2-MIB::snmpTrapEnterprise" in names
    assert all(v.oid != ".".join(map(str, SNMP_TRAP_COMMUNITY)) for v in data.trap.varbinds)
    assert "secret" not in event.model_dump_json()


def test_v1_enterprise_specific_traps_get_the_smiv2_name() -> None:
    event = trap_event(v1_trap("1.3.6.1.2.1.33.2", 6, 1, "198.51.100.7"), MIBS, DEVICES, T0, "t")

    assert event.data.trap.name == "UPS-MIB::upsTrapOnBattery"
    assert event.data.alarm_key == "ups-1|UPS-MIB::upsAlarm|UPS-MIB::upsAlarmOnBattery"
