"""What one event does to its ticket, and what gets published."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.contract import (
    ActivityType,
    EmailReceived,
    EmailReceivedData,
    Priority,
    SpecialRoute,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketActivity,
    TicketActivityData,
    TicketState,
    TicketStatus,
    Tier,
)
from engine.contract.identity import event_id
from engine.contract.topics import TICKET_ACTIVITY, TICKET_DECISIONS, TIER_TOPICS
from engine.rules.ruleset import load_ruleset
from engine.triage.publications import publications
from engine.triage.triage import TriageOutcome, triage

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


def opened(outcome: TriageOutcome) -> TicketState:
    assert outcome.ticket is not None, outcome.refused
    return outcome.ticket


def test_a_new_ticket_is_opened_classified_and_routed() -> None:
    outcome = triage(None, mail("la central está caída", "m1@acme"), RULES, T0)

    assert outcome.routed and not outcome.duplicate
    ticket = opened(outcome)
    assert (ticket.priority, ticket.tier, ticket.event_count) == (Priority.P1, Tier.L3, 1)
    assert ticket.opened_at == T0
    topics = [p.topic for p in publications(outcome, mail("x", "m1@acme"), T0, "test")]
    assert topics == [TICKET_DECISIONS, TIER_TOPICS[Tier.L3]]


def test_a_redelivered_event_changes_nothing() -> None:
    first = triage(None, mail("la central está caída", "m1@acme"), RULES, T0)

    again = triage(opened(first), mail("la central está caída", "m1@acme"), RULES, T0)

    assert again.duplicate and not again.routed
    assert again.ticket == first.ticket
    assert publications(again, mail("x", "m1@acme"), T0, "test") == []


def test_a_calmer_follow_up_never_lowers_priority_and_is_not_rerouted() -> None:
    first = triage(None, mail("la central está caída", "m1@acme"), RULES, T0)
    later = T0 + timedelta(minutes=5)

    follow_up = triage(opened(first), mail("¿cómo puedo ver el log?", "m2@acme"), RULES, later)

    assert opened(follow_up).priority is Priority.P1
    assert opened(follow_up).event_count == 2
    assert opened(follow_up).updated_at == later
    assert not follow_up.routed
    assert follow_up.classification is not None
    assert any("never lowered" in line for line in follow_up.classification.explanation)


def test_an_escalating_follow_up_reroutes_the_ticket() -> None:
    first = triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0)
    assert opened(first).tier is Tier.L1

    worse = triage(opened(first), mail("now the PBX is down", "m2@acme"), RULES, T0)

    assert worse.routed
    assert (opened(worse).priority, opened(worse).tier) == (Priority.P1, Tier.L3)
    assert opened(worse).category == "adding_extensions"


def test_a_follow_up_keeps_the_special_routes_of_earlier_messages() -> None:
    bug = triage(None, mail("after the update the web interface won't load", "m1@acme"), RULES, T0)
    assert SpecialRoute.BUG_TRACKER in opened(bug).special_routes

    thanks = triage(opened(bug), mail("thanks, waiting for news", "m2@acme"), RULES, T0)

    assert opened(thanks).special_routes == opened(bug).special_routes
    assert opened(thanks).tier is opened(bug).tier
    assert not thanks.routed


def activity(kind: ActivityType, at: datetime = T0, **fields: object) -> TicketActivity:
    data = TicketActivityData.model_validate(
        {"ticket_id": "T-AAAAAAAAAAAAA", "activity": kind, "actor": "ana", **fields}
    )
    return TicketActivity(
        event_id=f"act-{kind}-{at.isoformat()}",
        occurred_at=at,
        source="api://test",
        data=data,
    )


def test_a_customer_reply_is_contact_recorded_as_activity_not_an_update() -> None:
    first = opened(triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0))
    later = T0 + timedelta(hours=1)
    reply_mail = mail("still cannot add it", "m2@acme").model_copy(update={"occurred_at": later})

    reply = triage(first, reply_mail, RULES, later)

    ticket = opened(reply)
    assert ticket.last_customer_contact_at == later
    assert (ticket.informed_count, ticket.last_informed_at) == (0, None)
    assert reply.activity is not None and reply.activity.activity is ActivityType.CUSTOMER_REPLIED
    published = publications(reply, reply_mail, later, "test")
    feed = [p.record for p in published if p.topic == TICKET_ACTIVITY]
    assert len(feed) == 1 and feed[0].event_id == event_id("ticket.activity", reply_mail.event_id)


def test_the_customer_writing_on_a_resolved_ticket_reopens_it() -> None:
    first = opened(triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0))
    resolved = opened(triage(first, activity(ActivityType.RESOLVED), RULES, T0))
    assert resolved.status is TicketStatus.RESOLVED

    again = opened(triage(resolved, mail("it broke again", "m2@acme"), RULES, T0))

    assert (again.status, again.resolved_at) == (TicketStatus.OPEN, None)


def test_the_customer_writing_during_a_third_party_wait_leaves_the_wait_as_it_was() -> None:
    first = opened(triage(None, mail("the PBX crashes on transfer", "m1@acme"), RULES, T0))
    vendor = ThirdPartyWait(kind=ThirdPartyWaitKind.UPSTREAM_FIX, reference="ASTERISK-30123")
    waiting = opened(triage(first, activity(ActivityType.WAITING_ON_THIRD_PARTY,
                                            waiting_on=vendor), RULES, T0))  # fmt: skip
    later = T0 + timedelta(hours=1)
    news = mail("any news?", "m2@acme").model_copy(update={"occurred_at": later})

    follow_up = opened(triage(waiting, news, RULES, later))

    assert follow_up.status is TicketStatus.WAITING_ON_THIRD_PARTY
    assert follow_up.waiting_on == waiting.waiting_on
    assert str(follow_up.waiting_on) == "upstream_fix ASTERISK-30123"
    assert follow_up.last_customer_contact_at == later


def test_agent_activity_moves_the_ticket_and_is_republished_with_it() -> None:
    first = opened(triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0))
    informed_at = T0 + timedelta(hours=2)
    event = activity(ActivityType.CUSTOMER_INFORMED, informed_at, message="Working on it")

    outcome = triage(first, event, RULES, informed_at)

    ticket = opened(outcome)
    assert (ticket.informed_count, ticket.last_informed_at) == (1, informed_at)
    assert ticket.event_count == 2 and event.event_id in ticket.recent_event_ids
    [published] = publications(outcome, event, informed_at, "test")
    assert published.topic == TICKET_ACTIVITY and published.record.event_id == event.event_id
    data = published.record.data
    assert isinstance(data, TicketActivityData) and data.ticket == ticket


def test_an_escalation_routes_the_ticket_to_the_higher_tier_and_sticks() -> None:
    first = opened(triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0))
    escalation = activity(ActivityType.ESCALATED, tier=Tier.L3, note="customer is a carrier")

    outcome = triage(first, escalation, RULES, T0)

    assert outcome.routed and opened(outcome).tier is Tier.L3
    topics = [p.topic for p in publications(outcome, escalation, T0, "test")]
    assert topics == [TIER_TOPICS[Tier.L3], TICKET_ACTIVITY]
    follow_up = triage(opened(outcome), mail("any news?", "m2@acme"), RULES, T0)
    assert opened(follow_up).tier is Tier.L3 and not follow_up.routed


def test_a_person_corrects_the_priority_with_a_reason_and_the_route_tree_follows() -> None:
    first = opened(triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0))
    assert (first.priority, first.tier) == (Priority.P4, Tier.L1)
    later = T0 + timedelta(minutes=5)
    raised = activity(ActivityType.REPRIORITIZED, later, priority=Priority.P2,
                      note="the whole reception cannot transfer calls")  # fmt: skip

    outcome = triage(first, raised, RULES, later)

    ticket = opened(outcome)
    assert (ticket.priority, ticket.priority_since, ticket.tier) == (Priority.P2, later, Tier.L3)
    assert outcome.classification is not None
    assert outcome.classification.explanation == (
        "reprioritized P4 -> P2 by ana: the whole reception cannot transfer calls; now L3",
    )
    topics = [p.topic for p in publications(outcome, raised, later, "test")]
    assert topics == [TICKET_DECISIONS, TIER_TOPICS[Tier.L3], TICKET_ACTIVITY]
    again = later + timedelta(minutes=1)
    lowered = activity(ActivityType.REPRIORITIZED, again, priority=Priority.P3, note="one desk")
    calmer = opened(triage(ticket, lowered, RULES, again))
    assert (calmer.priority, calmer.tier) == (Priority.P3, Tier.L3)  # down a tier: a person's call
    follow_up = triage(calmer, mail("any news?", "m2@acme"), RULES, again)
    assert opened(follow_up).priority is Priority.P3
    without_reason = activity(
        ActivityType.REPRIORITIZED, again + timedelta(1), priority=Priority.P1
    )
    assert triage(calmer, without_reason, RULES, again).refused == (
        "reprioritized: 'note' (the reason) is required"
    )


def test_an_impossible_activity_is_refused_with_its_reason_and_publishes_nothing() -> None:
    first = opened(triage(None, mail("how do I add an extension?", "m1@acme"), RULES, T0))
    resolved = opened(triage(first, activity(ActivityType.RESOLVED), RULES, T0))
    twice = activity(ActivityType.RESOLVED, T0 + timedelta(minutes=1))

    outcome = triage(resolved, twice, RULES, T0)

    assert outcome.refused == "ticket T-AAAAAAAAAAAAA is already resolved"
    assert publications(outcome, twice, T0, "test") == []
    unknown = triage(None, activity(ActivityType.NOTE, note="hello"), RULES, T0)
    assert unknown.refused == "no ticket T-AAAAAAAAAAAAA"


def test_a_bad_ticket_event_names_its_field_without_the_kind_tag() -> None:
    import pytest
    from pydantic import ValidationError

    from engine.contract import parse_incoming, record_location
    from engine.errors import field_path

    bad = b'{"event_id":"e","kind":"email.received","occurred_at":"2026-11-22T10:00:00Z",'
    bad += b'"source":"t","schema_version":1,"data":{"ticket_id":"T-AAAAAAAAAAAAA"}}'
    with pytest.raises(ValidationError) as caught:
        parse_incoming(bad)

    assert field_path(record_location(caught.value.errors()[0]["loc"])) == "data.message_id"


def test_a_follow_up_from_an_unknown_sender_keeps_the_tickets_customer() -> None:
    from engine.contract.customers import Customer, CustomerDirectory

    directory = CustomerDirectory([Customer(id="acme", domains=("acme.example",))])
    first = opened(triage(None, mail("la central está caída", "m1@acme"), RULES, T0, directory))
    original = mail("sigue igual", "m2@acme")
    colleague = original.model_copy(
        update={"data": original.data.model_copy(update={"from_address": "x@elsewhere.example"})}
    )

    follow_up = opened(triage(first, colleague, RULES, T0, directory))

    assert first.customer_id == "acme"
    assert (follow_up.customer_id, follow_up.customer) == ("acme", first.customer)


def copied(event: EmailReceived, *cc: str) -> EmailReceived:
    return event.model_copy(update={"data": event.data.model_copy(update={"cc": cc})})


def test_the_people_in_cc_of_the_opening_mail_become_the_tickets_parties() -> None:
    opening = copied(
        mail("la central está caída", "m1@acme"),
        "luis@acme.example", "soporte@support.example.com", "c@acme.example",
        "postmaster@acme.example", "eva@globex.example",
    )  # fmt: skip

    ticket = opened(triage(None, opening, RULES, T0))

    assert ticket.parties == ("luis@acme.example", "eva@globex.example")


def test_a_follow_up_keeps_the_parties_and_an_activity_changes_them() -> None:
    first = opened(
        triage(None, copied(mail("sin tono", "m1@acme"), "luis@acme.example"), RULES, T0)
    )
    follow_up = copied(mail("sigue igual", "m2@acme"), "otro@acme.example")
    kept = opened(triage(first, follow_up, RULES, T0))
    assert kept.parties == ("luis@acme.example",)

    added = opened(
        triage(kept, activity(ActivityType.PARTY_ADDED, party="eva@acme.example"), RULES, T0)
    )
    removed = triage(
        added, activity(ActivityType.PARTY_REMOVED, party="luis@acme.example"), RULES, T0
    )

    assert added.parties == ("luis@acme.example", "eva@acme.example")
    assert opened(removed).parties == ("eva@acme.example",)
    assert removed.activity is not None and removed.activity.ticket == removed.ticket


def test_the_checks_the_opening_mail_failed_stay_with_its_requester() -> None:
    from engine.contract import SenderCheck

    forged = mail("la central está caída", "m1@acme")
    forged = forged.model_copy(
        update={"data": forged.data.model_copy(update={"failed_checks": (SenderCheck.DMARC,)})}
    )

    ticket = opened(triage(None, forged, RULES, T0))
    follow_up = opened(triage(ticket, mail("sigue igual", "m2@acme"), RULES, T0))
    honest = opened(triage(None, mail("la central está caída", "m3@acme"), RULES, T0))

    assert ticket.requester_failed_checks == (SenderCheck.DMARC,)
    assert follow_up.requester_failed_checks == (SenderCheck.DMARC,)
    assert honest.requester_failed_checks == ()
