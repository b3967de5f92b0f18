"""The SNMP family: a trap's facts as rules read them, the device, the received trap, and alarms."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from engine.contract.base import Record, UtcDatetime


class Varbind(Record):
    oid: str
    name: str | None = Field(default=None, description="MIB name, e.g. IF-MIB::ifIndex")
    value: str | int | float | None
    syntax: str | None = Field(
        default=None, description="SNMP type of the value, e.g. Integer32, OctetString, TimeTicks"
    )
    label: str | None = Field(
        default=None,
        description="The value's meaning when the MIB names it: an enumeration label "
        "(IF-MIB::ifOperStatus 2 -> down) or an OID value's MIB name",
    )


class TrapFacts(Record):
    """The SNMP fields rules may read (filled by the SNMP channel)."""

    oid: str
    name: str | None = Field(default=None, description="MIB name, e.g. IF-MIB::linkDown")
    varbinds: tuple[Varbind, ...] = ()
    device_role: str | None = None


class AlarmTransition(StrEnum):
    """What a notification says about its alarm."""

    RAISED = "raised"
    CLEARED = "cleared"
    EVENT = "event"
    """A notification with no clearing counterpart (e.g. coldStart): counted, never cleared."""


class AlarmState(Record):
    """An alarm's life on its ticket: storms collapse into occurrences, a clearing
    notification clears it, and too many raise/clear transitions flag it as flapping."""

    key: str = Field(description="device | trap family | affected object")
    occurrences: int = Field(ge=1, description="Notifications received for this alarm")
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    cleared: bool
    cleared_at: UtcDatetime | None
    flapping: bool
    transitions: tuple[UtcDatetime, ...] = Field(
        description="When the alarm last changed between raised and cleared, within the "
        "flapping window, oldest first"
    )


class SnmpVersion(StrEnum):
    V1 = "v1"
    V2C = "v2c"
    V3 = "v3"


class SecurityLevel(StrEnum):
    NO_AUTH_NO_PRIV = "noAuthNoPriv"
    AUTH_NO_PRIV = "authNoPriv"
    AUTH_PRIV = "authPriv"


class NotificationPdu(StrEnum):
    TRAP = "trap"
    INFORM = "inform"


class Device(Record):
    """A monitored device, from the device directory."""

    name: str
    role: str | None = None
    customer_id: str | None = None
    timezone: str | None = None


class TrapReceivedData(Record):
    ticket_id: str = Field(description="Derived from the alarm key: one ticket per alarm")
    alarm_key: str = Field(description="device | trap family | affected object")
    transition: AlarmTransition
    sender: str = Field(description="UDP source address of the notification")
    sender_port: int = Field(ge=0, le=65535)
    agent_address: str | None = Field(
        description="snmpTrapAddress, or a v1 trap's agent-addr, when trusted: the device "
        "behind a forwarder (a sender the device directory marks ``role: forwarder``), or the "
        "sender's own address"
    )
    claimed_agent_address: str | None = Field(
        default=None,
        description="An snmpTrapAddress or v1 agent-addr naming another address than the "
        "sender, from a sender that is not a forwarder: kept as information, never used to "
        "pick the device",
    )
    version: SnmpVersion
    pdu: NotificationPdu
    security_name: str = Field(description="v3 user, or the community's name (never its value)")
    security_level: SecurityLevel
    engine_id: str | None = Field(description="Context engine id, hex (v3)")
    request_id: int
    uptime_hundredths: int | None = Field(description="sysUpTime.0 of the notification")
    trap: TrapFacts = Field(description="Trap OID, MIB names and typed varbinds (RFC 3584 shape)")
    device: Device | None = Field(description="None: the address is not in the device directory")
    occurrences: int = Field(
        default=1,
        ge=1,
        description="Consecutive notifications of this alarm and transition the event stands "
        "for: a storm folded at the receiver (each one is kept on snmp.traps.v1)",
    )
    first_received_at: UtcDatetime | None = Field(
        default=None,
        description="When the first of the folded notifications arrived; None when the event "
        "stands for one notification, received at occurred_at",
    )
