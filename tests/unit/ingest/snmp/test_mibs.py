"""MIB names resolve offline, from the shipped compiled MIBs."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.ingest.snmp.mibs import MAX_CACHED_OIDS, MibError, MibResolver, oid_text, parse_oid
from tests.unit.ingest.snmp.trap_samples import MIBS


@pytest.mark.parametrize(
    ("oid", "name"),
    [
        ("1.3.6.1.6.3.1.1.5.1", "SNMPv2-MIB::coldStart"),
        ("1.3.6.1.6.3.1.1.5.3", "IF-MIB::linkDown"),
        ("1.3.6.1.6.3.1.1.5.4", "IF-MIB::linkUp"),
        ("1.3.6.1.2.1.88.2.0.1", "DISMAN-EVENT-MIB::mteTriggerFired"),
        ("1.3.6.1.2.1.47.2.0.1", "ENTITY-MIB::entConfigChange"),
        ("1.3.6.1.2.1.33.2.1", "UPS-MIB::upsTrapOnBattery"),
    ],
)
def test_standard_notifications_have_their_names(oid: str, name: str) -> None:
    assert MIBS.notification_name(parse_oid(oid)) == name
    assert MIBS.resolve_name(name) == parse_oid(oid)


@pytest.mark.parametrize(
    ("oid", "name"),
    [
        ("1.3.6.1.2.1.2.2.1.1.3", "IF-MIB::ifIndex"),
        ("1.3.6.1.2.1.1.5.0", "SNMPv2-MIB::sysName"),
        ("1.3.6.1.2.1.33.1.2.1.0", "UPS-MIB::upsBatteryStatus"),
        ("1.3.6.1.2.1.47.1.1.1.1.7.1", "ENTITY-MIB::entPhysicalName"),
    ],
)
def test_varbind_oids_name_their_object(oid: str, name: str) -> None:
    assert MIBS.object_name(parse_oid(oid)) == name


def test_an_unknown_oid_keeps_no_name() -> None:
    assert MIBS.notification_name(parse_oid("1.3.6.1.4.1.99999.0.1")) is None
    assert MIBS.object_name(parse_oid("1.3.6.1.4.1.99999.1.2.0")) is None


def test_enumerations_are_labelled() -> None:
    assert MIBS.value_label(parse_oid("1.3.6.1.2.1.2.2.1.8.3"), 2) == "down"
    assert MIBS.value_label(parse_oid("1.3.6.1.2.1.2.2.1.8.3"), 99) is None
    assert MIBS.value_label(parse_oid("1.3.6.1.2.1.2.2.1.1.3"), 3) is None


def test_a_v1_converted_smiv2_notification_gets_its_defined_name() -> None:
    # RFC 3584: v1 enterprise upsTraps, specific 1 -> upsTraps.0.1; UPS-MIB defines upsTraps.1
    assert MIBS.canonical_trap_oid(parse_oid("1.3.6.1.2.1.33.2.0.1")) == parse_oid(
        "1.3.6.1.2.1.33.2.1"
    )
    unknown = parse_oid("1.3.6.1.4.1.99999.0.7")
    assert MIBS.canonical_trap_oid(unknown) == unknown


VENDOR_MIB = """
(MibScalar, MibIdentifier, NotificationType, Integer32) = mibBuilder.import_symbols(
    "SNMPv2-SMI", "MibScalar", "MibIdentifier", "NotificationType", "Integer32")
acmePbx = MibIdentifier((1, 3, 6, 1, 4, 1, 99999))
acmeTrunkAlarm = NotificationType((1, 3, 6, 1, 4, 1, 99999, 0, 1))
acmeTrunkId = MibScalar((1, 3, 6, 1, 4, 1, 99999, 1), Integer32())
mibBuilder.export_symbols("ACME-PBX-MIB", acmePbx=acmePbx, acmeTrunkAlarm=acmeTrunkAlarm,
                          acmeTrunkId=acmeTrunkId)
"""


def test_vendor_mib_directories_add_names(tmp_path: Path) -> None:
    (tmp_path / "ACME-PBX-MIB.py").write_text(VENDOR_MIB)

    resolver = MibResolver([tmp_path])

    assert resolver.notification_name(parse_oid("1.3.6.1.4.1.99999.0.1")) == (
        "ACME-PBX-MIB::acmeTrunkAlarm"
    )
    assert resolver.object_name(parse_oid("1.3.6.1.4.1.99999.1.0")) == "ACME-PBX-MIB::acmeTrunkId"


def test_a_missing_vendor_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MibError, match="does not exist"):
        MibResolver([tmp_path / "nope"])


def test_names_remembered_for_senders_oids_stay_within_their_bound() -> None:
    """A sender inventing OIDs fills the caches up to their bound, never past it."""
    invented = [(1, 3, 6, 1, 4, 1, 99999, n, *([7] * 100)) for n in range(MAX_CACHED_OIDS + 500)]

    for oid in invented:
        MIBS.object_name(oid)
        oid_text(oid)

    assert MIBS.locate.cache_info().currsize == MAX_CACHED_OIDS
    assert oid_text.cache_info().currsize == MAX_CACHED_OIDS
    assert MIBS.object_name(parse_oid("1.3.6.1.2.1.2.2.1.1.3")) == "IF-MIB::ifIndex"
