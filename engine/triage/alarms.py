"""Alarms: from SNMP notifications to one ticket per alarm. Pure functions.

An alarm's identity is the device, the trap's family and the affected object (the
ifIndex of a link, the alarm type of a UPS), so a storm of the same alarm lands on one
ticket and a clearing notification (linkUp after linkDown, the UPS back on mains) finds
the ticket its alarm opened. The ticket keeps an :class:`AlarmState`: occurrences, first
and last seen, cleared or not, and the recent raise/clear transitions; too many of those
within a window flag the alarm as flapping instead of reopening the ticket each time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.contract import (
    AlarmState,
    AlarmTransition,
    Channel,
    CustomerProfile,
    Envelope,
    TicketMessage,
    TicketState,
    TrapReceived,
    TrapReceivedData,
)
from engine.contract.alarm_identity import varbind_text
from engine.contract.customers import CustomerDirectory


@dataclass(frozen=True)
class FlapPolicy:
    """``transitions`` raise/clear changes within ``window`` make an alarm flapping."""

    transitions: int = 6
    window: timedelta = timedelta(minutes=10)


DEFAULT_FLAP_POLICY = FlapPolicy()


@dataclass(frozen=True)
class AlarmUpdate:
    state: AlarmState
    reopened: bool
    """Raised again after it had cleared, and not flapping: the ticket opens again."""


def update(
    previous: AlarmState | None,
    key: str,
    transition: AlarmTransition,
    at: datetime,
    policy: FlapPolicy = DEFAULT_FLAP_POLICY,
    occurrences: int = 1,
    first_at: datetime | None = None,
) -> AlarmUpdate:
    """The alarm after ``occurrences`` more notifications of one transition, the first
    received ``first_at`` (default ``at``) and the last ``at`` (a storm folded at the
    receiver): the alarm changes at most once, when the first of them arrived."""
    began = first_at or at
    if previous is None:
        cleared = transition is AlarmTransition.CLEARED
        state = AlarmState(
            key=key,
            occurrences=occurrences,
            first_seen=began,
            last_seen=at,
            cleared=cleared,
            cleared_at=began if cleared else None,
            flapping=False,
            transitions=(),
        )
        return AlarmUpdate(state, reopened=False)
    cleared, cleared_at = previous.cleared, previous.cleared_at
    changed = (transition is AlarmTransition.CLEARED and not cleared) or (
        transition is AlarmTransition.RAISED and cleared
    )
    if changed:
        cleared = transition is AlarmTransition.CLEARED
        cleared_at = began if cleared else None
    latest = max(previous.last_seen, at)
    recent = (*previous.transitions, began) if changed else previous.transitions
    recent = tuple(sorted(t for t in recent if t > latest - policy.window))
    flapping = len(recent) >= policy.transitions
    state = AlarmState(
        key=key,
        occurrences=previous.occurrences + occurrences,
        first_seen=min(previous.first_seen, began),
        last_seen=latest,
        cleared=cleared,
        cleared_at=cleared_at,
        flapping=flapping,
        transitions=recent,
    )
    reopened = changed and transition is AlarmTransition.RAISED and not flapping
    return AlarmUpdate(state, reopened=reopened)


def alarm_after(previous: TicketState | None, event: Envelope) -> AlarmUpdate | None:
    """The ticket's alarm once ``event`` is applied: a notification updates it, anything
    else leaves it as it was."""
    before = previous.alarm if previous is not None else None
    if not isinstance(event, TrapReceived):
        return AlarmUpdate(before, reopened=False) if before is not None else None
    data = event.data
    return update(
        before,
        data.alarm_key,
        data.transition,
        event.occurred_at,
        occurrences=data.occurrences,
        first_at=data.first_received_at,
    )


def trap_message(data: TrapReceivedData, customers: CustomerDirectory) -> TicketMessage:
    """What the rules read of a notification: the trap facts, and a subject and body a
    person can read in a queue."""
    device = data.device
    where = device.name if device is not None else (data.agent_address or data.sender)
    customer: CustomerProfile | None = None
    if device is not None and device.customer_id is not None:
        customer = customers.profile_by_id(device.customer_id) or CustomerProfile(
            customer_id=device.customer_id
        )
    lines = [f"{v.name or v.oid} = {varbind_text(v)}" for v in data.trap.varbinds]
    return TicketMessage(
        channel=Channel.SNMP,
        subject=f"{where}: {data.trap.name or data.trap.oid}",
        body="\n".join(lines),
        sender=where,
        customer=customer,
        trap=data.trap,
    )
