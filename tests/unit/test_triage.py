"""What one event does to its ticket, and what gets published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.identity import event_id
from engine.models import EmailReceived, EmailReceivedData, Priority, SpecialRoute, Tier
from engine.rules.ruleset import load_ruleset
from engine.topics import TICKET_DECISIONS, TIER_TOPICS
from engine.triage import publications, triage

RULES = load_ruleset()
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def mail(body: str, message_id: str, subject: str = "Soporte") -> EmailReceived:
    return EmailReceived(
        event_id=event_id("email", message_id),
        occurred_at=T0,
        source="smtp://test",
        data=EmailReceivedData(
            ticket_id="T-AAAAAAAAAAAAA",
            message_id=message_id,
            in_reply_to=None,
            references=(),
            mail_from="c@acme.example",
            rcpt_to=("soporte@support.example.com",),
            from_address="c@acme.example",
            from_name="Cliente",
            subject=subject,
            text=body,
            text_truncated=False,
            new_text=body,
            automated_reason=None,
            date=None,
            attachments=(),
            peer="127.0.0.1",
            size_bytes=100,
        ),
    )


def test_a_new_ticket_is_opened_classified_and_routed() -> None:
    outcome = triage(None, mail("la central está caída", "m1@acme"), RULES, T0)

    assert outcome.routed and not outcome.duplicate
    ticket = outcome.ticket
    assert (ticket.priority, ticket.tier, ticket.event_count) == (Priority.P1, Tier.L3, 1)
    assert ticket.opened_at == T0
    topics = [p.topic for p in publications(outcome, mail("x", "m1@acme"), T0, "test")]
    assert topics == [TICKET_DECISIONS, TIER_TOPICS[Tier.L3]]


def test_a_redelivered_event_changes_nothing() -> None:
    first = triage(None, mail("la central está caída", "m1@acme"), RULES, T0)

    again = triage(first.ticket, mail("la central está caída", "m1@acme"), RULES, T0)

    assert again.duplicate and not again.routed
    assert again.ticket == first.ticket
    assert publications(again, mail("x", "m1@acme"), T0, "test") == []


def test_a_calmer_follow_up_never_lowers_priority_and_is_not_rerouted() -> None:
    first = triage(None, mail("la central está caída", "m1@acme"), RULES, T0)
    later = T0 + timedelta(minutes=5)

    follow_up = triage(first.ticket, mail("¿cómo puedo ver el log?", "m2@acme"), RULES, later)

    assert follow_up.ticket.priority is Priority.P1
    assert follow_up.ticket.event_count == 2
    assert follow_up.ticket.updated_at == later
    assert not follow_up.routed
    assert follow_up.classification is not None
    assert any("never lowered" in line for line in follow_up.classification.explanation)


def test_an_escalating_follow_up_reroutes_the_ticket() -> None:
    first = triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0)
    assert first.ticket.tier is Tier.L1

    worse = triage(first.ticket, mail("now the PBX is down", "m2@acme"), RULES, T0)

    assert worse.routed
    assert (worse.ticket.priority, worse.ticket.tier) == (Priority.P1, Tier.L3)
    assert worse.ticket.category == "adding_extensions"


def test_a_follow_up_keeps_the_special_routes_of_earlier_messages() -> None:
    bug = triage(None, mail("after the update the web interface won't load", "m1@acme"), RULES, T0)
    assert SpecialRoute.BUG_TRACKER in bug.ticket.special_routes

    thanks = triage(bug.ticket, mail("thanks, waiting for news", "m2@acme"), RULES, T0)

    assert thanks.ticket.special_routes == bug.ticket.special_routes
    assert thanks.ticket.tier is bug.ticket.tier
    assert not thanks.routed


def test_a_processor_is_stalled_only_when_idle_with_records_past_its_commit() -> None:
    from engine.processor import stalled_partitions

    highwaters = {"p0": 5, "p1": 2, "p2": 0}
    committed = {"p0": 5, "p1": 1, "p2": None}

    assert stalled_partitions(committed, highwaters, idle_seconds=30) == ["p1"]
    assert stalled_partitions(committed, highwaters, idle_seconds=5) == []
    assert stalled_partitions({"p0": 5, "p1": 2}, highwaters, idle_seconds=30) == []
