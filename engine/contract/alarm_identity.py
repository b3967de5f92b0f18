"""An alarm's identity: the device, the trap's family and the affected object (the ifIndex
of a link, the alarm type of a UPS). The SNMP channel derives the ticket id from it, so a
storm of one alarm lands on one ticket and a clearing notification finds the ticket its
alarm opened; triage reads the transition it implies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.contract.identity import ticket_id
from engine.contract.trap import AlarmTransition, TrapFacts, Varbind


@dataclass(frozen=True)
class AlarmFamily:
    """Notifications that raise and clear the same alarm, and where its object is."""

    name: str
    raises: frozenset[str]
    clears: frozenset[str] = frozenset()
    object_varbinds: tuple[str, ...] = ()
    implied_objects: Mapping[str, str] = field(default_factory=dict)
    """Object of a notification that carries none (upsTrapOnBattery is the on-battery alarm)."""


FAMILIES: tuple[AlarmFamily, ...] = (
    AlarmFamily(
        "IF-MIB::link",
        raises=frozenset({"IF-MIB::linkDown"}),
        clears=frozenset({"IF-MIB::linkUp"}),
        object_varbinds=("IF-MIB::ifIndex",),
    ),
    AlarmFamily(
        "UPS-MIB::upsAlarm",
        raises=frozenset({"UPS-MIB::upsTrapOnBattery", "UPS-MIB::upsTrapAlarmEntryAdded"}),
        clears=frozenset({"UPS-MIB::upsTrapAlarmEntryRemoved"}),
        object_varbinds=("UPS-MIB::upsAlarmDescr",),
        implied_objects={"UPS-MIB::upsTrapOnBattery": "UPS-MIB::upsAlarmOnBattery"},
    ),
    AlarmFamily(
        "DISMAN-EVENT-MIB::mteTrigger",
        raises=frozenset({"DISMAN-EVENT-MIB::mteTriggerRising"}),
        clears=frozenset({"DISMAN-EVENT-MIB::mteTriggerFalling"}),
        object_varbinds=("DISMAN-EVENT-MIB::mteHotTrigger", "DISMAN-EVENT-MIB::mteHotOID"),
    ),
    AlarmFamily(
        "SNMPv2-MIB::restart",
        raises=frozenset({"SNMPv2-MIB::coldStart", "SNMPv2-MIB::warmStart"}),
    ),
)
_BY_TRAP = {trap: family for family in FAMILIES for trap in family.raises | family.clears}


@dataclass(frozen=True)
class AlarmIdentity:
    key: str
    ticket_id: str
    transition: AlarmTransition


def varbind_text(varbind: Varbind) -> str:
    return varbind.label or str(varbind.value)


def identify(trap: TrapFacts, device: str) -> AlarmIdentity:
    """The alarm a notification is about. ``device`` is the device's name from the
    directory, else its address."""
    trap_name = trap.name or trap.oid
    family = _BY_TRAP.get(trap_name)
    if family is None:
        key = f"{device}|{trap_name}|"
        return AlarmIdentity(key, ticket_id("snmp-alarm", key), AlarmTransition.EVENT)
    found = {v.name: v for v in trap.varbinds if v.name in family.object_varbinds}
    parts = [varbind_text(found[name]) for name in family.object_varbinds if name in found]
    implied = family.implied_objects.get(trap_name)
    affected = ",".join(parts) if parts else (implied or "")
    key = f"{device}|{family.name}|{affected}"
    if trap_name in family.clears:
        transition = AlarmTransition.CLEARED
    elif family.clears:
        transition = AlarmTransition.RAISED
    else:
        transition = AlarmTransition.EVENT
    return AlarmIdentity(key, ticket_id("snmp-alarm", key), transition)
