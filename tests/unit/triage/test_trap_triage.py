"""What SNMP notifications do to their ticket: one ticket per alarm, rules for traps."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.contract import (
    ActivityType,
    Channel,
    Priority,
    TicketState,
    TicketStatus,
    Tier,
    TrapReceived,
)
from engine.contract.customers import CustomerDirectory, load_directory
from engine.rules.ruleset import load_ruleset
from engine.triage.triage import message_of, suppression_reason, triage
from tests.integration.harness import PROJECT_ROOT
from tests.unit.ingest.snmp.trap_samples import T0, link_event

RULES = load_ruleset()
CUSTOMERS: CustomerDirectory = load_directory(PROJECT_ROOT / "deploy" / "customers.example.yaml")


def after(previous: TicketState | None, event: TrapReceived, now: datetime = T0) -> TicketState:
    outcome = triage(previous, event, RULES, now, CUSTOMERS)
    assert outcome.ticket is not None
    return outcome.ticket


def test_a_trap_reads_as_a_message_of_the_snmp_channel() -> None:
    event = link_event(up=False)
    message = message_of(event, CUSTOMERS)

    assert message.channel is Channel.SNMP
    assert message.subject == "pbx-mty-1: IF-MIB::linkDown"
    assert "IF-MIB::ifOperStatus = down" in message.body
    assert message.customer is not None and message.customer.customer_id == "acme"
    assert message.customer.language == "es"  # the whole profile, from the directory
    assert message.trap == event.data.trap
    assert suppression_reason(event) is None


def test_link_down_of_a_pbx_is_p1_and_its_storm_is_one_ticket_counting_occurrences() -> None:
    ticket = None
    for n in range(200):
        event = link_event(up=False, request_id=n)
        outcome = triage(ticket, event, RULES, T0 + timedelta(seconds=n), CUSTOMERS)
        ticket = outcome.ticket
        assert outcome.routed is (n == 0)  # routed once; later traps only update it
    assert ticket is not None and ticket.alarm is not None
    assert (ticket.priority, ticket.tier) == (Priority.P1, Tier.L3)
    assert ticket.customer_id == "acme"
    assert ticket.event_count == 200
    assert ticket.alarm.occurrences == 200
    assert ticket.alarm.first_seen == T0 and not ticket.alarm.cleared


def test_a_retransmitted_inform_is_not_a_second_occurrence() -> None:
    first = after(None, link_event(up=False, request_id=9))

    again = triage(first, link_event(up=False, request_id=9), RULES, T0)

    assert again.duplicate
    assert again.ticket is not None and again.ticket.alarm is not None
    assert again.ticket.alarm.occurrences == 1


def test_link_up_clears_the_alarm_and_keeps_the_priority() -> None:
    down = after(None, link_event(up=False))
    later = T0 + timedelta(minutes=5)

    up = after(down, link_event(up=True, request_id=2, at=later), later)

    assert up.alarm is not None and up.alarm.cleared
    assert up.alarm.cleared_at == later
    assert up.priority is Priority.P1  # never lowered by a calmer message
    assert up.ticket_id == down.ticket_id


def test_a_resolved_ticket_reopens_when_its_alarm_is_raised_again() -> None:
    down = after(None, link_event(up=False))
    up = after(down, link_event(up=True, request_id=2))
    resolved = up.model_copy(update={"status": TicketStatus.RESOLVED})
    later = T0 + timedelta(hours=2)

    outcome = triage(resolved, link_event(up=False, request_id=3, at=later), RULES, later)

    again = outcome.ticket
    assert again is not None and again.status is TicketStatus.OPEN
    assert outcome.activity is not None and outcome.activity.activity is ActivityType.REOPENED
    assert again.alarm is not None and not again.alarm.cleared


def test_a_flapping_link_is_flagged_and_does_not_reopen() -> None:
    ticket = after(None, link_event(up=False))
    for n in range(1, 9):  # up, down, up ... down: 8 transitions in 80 s
        at = T0 + timedelta(seconds=10 * n)
        resolved = ticket.model_copy(update={"status": TicketStatus.RESOLVED})
        ticket = after(resolved, link_event(up=n % 2 == 1, request_id=n, at=at), at)

    assert ticket.alarm is not None and ticket.alarm.flapping
    assert not ticket.alarm.cleared  # the last notification raised it again ...
    assert ticket.status is TicketStatus.RESOLVED  # ... but a flapping alarm does not reopen
