"""The desk's decisions, fed records by hand: who takes what, who waits, who is passed over."""

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.contract import (
    Channel,
    CustomerProfile,
    Presence,
    Priority,
    Standing,
    ThirdPartyWait,
    ThirdPartyWaitKind,
    TicketState,
    TicketStatus,
    Tier,
)
from engine.workers.agents import parse_agents
from engine.workers.desk import PENDING_FOR, Assignment, Desk

# A Monday, 10:00 in Mexico City: everyone is in their working hours.
MONDAY = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 12, 5, 16, 0, tzinfo=UTC)

AGENTS = """\
agents:
  - {id: ana, name: Ana, email: ana@d.example, tiers: [L3], skills: [pbx, trunks],
     languages: [es], capacity: 2}
  - {id: tom, name: Tom, email: tom@d.example, tiers: [L3], skills: [trunks],
     languages: [en], capacity: 2}
  - {id: eva, name: Eva, email: eva@d.example, tiers: [L3], skills: [pbx, trunks],
     languages: [es, en], capacity: 2}
  - {id: leo, name: Leo, email: leo@d.example, tiers: [L1, L2], languages: [es, en],
     capacity: 3}
on_call:
  - {agent: eva, tier: L3, from: "2026-12-05T00:00:00Z", until: "2026-12-06T00:00:00Z"}
"""


def desk(now: datetime = MONDAY) -> Desk:
    return Desk(parse_agents(AGENTS, "agents.yaml"), now)


def ticket(ticket_id: str, **changes: Any) -> TicketState:
    fields: dict[str, Any] = dict(
        ticket_id=ticket_id, status=TicketStatus.OPEN, channel=Channel.EMAIL, subject="",
        requester="x@acme.example", customer_id="acme", opened_at=MONDAY, updated_at=MONDAY,
        priority=Priority.P3, category="pbx_down", tier=Tier.L3, special_routes=(), tags=(),
        skills=("pbx",), customer=CustomerProfile(customer_id="acme", language="es"),
        event_count=1, recent_event_ids=("e1",), ruleset_version="v",
    )  # fmt: skip
    fields.update(changes)
    return TicketState(**fields)


def english(ticket_id: str, **changes: Any) -> TicketState:
    profile = CustomerProfile(customer_id="globex", language="en")
    return ticket(ticket_id, customer=profile, skills=("trunks",), **changes)


def test_a_ticket_goes_to_the_qualified_agent_who_speaks_the_language() -> None:
    d = desk()
    d.apply_ticket(ticket("T-1", priority=Priority.P1))
    [assignment] = d.decide(MONDAY)
    assert (assignment.ticket_id, assignment.agent_id) == ("T-1", "ana")
    first, passed = assignment.explanation
    assert first == "assigned to ana (Ana): L3, skills pbx, speaks es, load 0/2"
    assert "tom (lacks skill pbx)" in passed
    assert "eva (as loaded and as idle (0/2); taken in id order)" in passed


def test_least_loaded_then_longest_without_a_new_ticket() -> None:
    d = desk()
    d.apply_ticket(ticket("T-1"))
    d.apply_ticket(ticket("T-2"))
    d.apply_ticket(ticket("T-3", opened_at=MONDAY + timedelta(minutes=1)))
    decided = d.decide(MONDAY)
    assert [a.agent_id for a in decided] == ["ana", "eva", "ana"]
    assert "ana (more loaded (1/2))" in decided[1].explanation[1]
    assert d.load("ana") == 2 and d.standing("ana") is Standing.AT_CAPACITY


def test_nobody_able_means_the_ticket_waits_visibly_and_is_taken_when_someone_can() -> None:
    d = desk()
    for name in ("ana", "eva"):
        d.apply_presence(name, Presence.AWAY)
    d.apply_ticket(ticket("T-1", priority=Priority.P2))
    assert d.decide(MONDAY) == []
    assert d.waiting() == {(Tier.L3, Priority.P2): 1}
    assert d.oldest_waiting(Tier.L3) == MONDAY
    d.apply_presence("eva", Presence.AVAILABLE)
    [assignment] = d.decide(MONDAY + timedelta(minutes=5))
    assert isinstance(assignment, Assignment)
    assert assignment.agent_id == "eva" and assignment.waited == timedelta(minutes=5)
    assert d.waiting() == {}


def test_a_p1_that_arrived_last_is_taken_first_when_a_slot_frees() -> None:
    d = desk()
    d.apply_presence("eva", Presence.SIGNED_OUT)
    for n in range(2):
        d.apply_ticket(ticket(f"T-busy{n}", assignee="ana"))
    for n in range(3):
        d.apply_ticket(
            ticket(f"T-p4-{n}", priority=Priority.P4, opened_at=MONDAY - timedelta(hours=n))
        )
    d.apply_ticket(ticket("T-p1", priority=Priority.P1, opened_at=MONDAY + timedelta(hours=1)))
    assert d.decide(MONDAY) == []
    d.apply_ticket(ticket("T-busy0", assignee="ana", status=TicketStatus.RESOLVED))
    [assignment] = d.decide(MONDAY)
    assert (assignment.ticket_id, assignment.agent_id) == ("T-p1", "ana")
    d.apply_ticket(ticket("T-busy1", assignee="ana", status=TicketStatus.RESOLVED))
    [next_one] = d.decide(MONDAY)
    assert next_one.ticket_id == "T-p4-2"  # then the oldest of the P4s


def test_nobody_goes_over_capacity() -> None:
    d = desk()
    for n in range(20):
        d.apply_ticket(ticket(f"T-{n:02}"))
    decided = d.decide(MONDAY)
    assert len(decided) == 4  # ana 2, eva 2; tom lacks the skill
    assert max(d.load(a) for a in ("ana", "eva")) == 2
    assert sum(d.waiting().values()) == 16


def test_a_decision_counts_until_the_processor_applies_it_and_lapses_if_it_never_does() -> None:
    d = desk()
    d.apply_ticket(ticket("T-1"))
    [assignment] = d.decide(MONDAY)
    assert assignment.state_version == 1
    assert d.owner("T-1") == "ana" and d.load("ana") == 1
    d.apply_ticket(ticket("T-1", event_count=2))  # a note, before the assignment is applied
    assert d.owner("T-1") == "ana" and d.decide(MONDAY) == []
    d.tick(MONDAY + PENDING_FOR + timedelta(seconds=1))
    assert d.owner("T-1") is None and d.load("ana") == 0
    assert [a.ticket_id for a in d.decide(MONDAY + PENDING_FOR)] == ["T-1"]


def test_the_processor_applying_someone_else_moves_the_load() -> None:
    d = desk()
    d.apply_ticket(ticket("T-1"))
    d.decide(MONDAY)
    d.apply_ticket(ticket("T-1", assignee="eva", event_count=2))
    assert (d.load("ana"), d.load("eva")) == (0, 1)


def test_outside_working_hours_only_the_signed_in_and_the_on_call_take_work() -> None:
    d = desk(SATURDAY)
    d.apply_ticket(english("T-1"))
    assert d.standing("tom") is Standing.OFF_HOURS
    [assignment] = d.decide(SATURDAY)
    assert assignment.agent_id == "eva"  # on call, speaks English
    d.apply_presence("tom", Presence.AVAILABLE)
    d.apply_ticket(english("T-2"))
    assert [a.agent_id for a in d.decide(SATURDAY)] == ["tom"]


def test_a_resolved_ticket_stops_waiting() -> None:
    d = desk()
    d.apply_presence("ana", Presence.AWAY)
    d.apply_presence("eva", Presence.AWAY)
    d.apply_ticket(ticket("T-1"))
    d.apply_ticket(ticket("T-1", status=TicketStatus.RESOLVED))
    d.apply_presence("ana", Presence.AVAILABLE)
    assert d.decide(MONDAY) == [] and d.waiting() == {}


def test_the_queue_of_a_tier() -> None:
    d = desk()
    d.apply_presence("ana", Presence.AWAY)
    d.apply_presence("eva", Presence.AWAY)
    d.apply_ticket(ticket("T-1", priority=Priority.P1, opened_at=MONDAY - timedelta(minutes=3)))
    d.apply_ticket(english("T-2"))
    d.decide(MONDAY)
    queue = d.queue(Tier.L3, MONDAY)
    assert queue.waiting[Priority.P1] == 1 and queue.oldest_waiting_seconds == 180
    assert queue.assigned == 1 and queue.agent_ids == ("ana", "tom", "eva")
    assert [t.ticket_id for t in d.tickets_of("tom")] == ["T-2"]


def test_a_ticket_waiting_on_a_third_party_stays_with_its_agent_and_is_counted() -> None:
    d = desk()
    d.apply_ticket(ticket("T-1"))
    d.apply_ticket(ticket("T-2"))
    assert [a.agent_id for a in d.decide(MONDAY)] == ["ana", "eva"]
    d.apply_ticket(ticket("T-1", assignee="ana", event_count=2))
    rma = ThirdPartyWait(kind=ThirdPartyWaitKind.RMA, reference="RMA-7")
    waiting = dict(status=TicketStatus.WAITING_ON_THIRD_PARTY, waiting_on=rma)
    d.apply_ticket(ticket("T-1", assignee="ana", event_count=3, **waiting))
    d.apply_ticket(english("T-3", **waiting))  # nobody has it: it waits for an agent too
    assert (d.owner("T-1"), d.load("ana")) == ("ana", 1)
    assert [(t.ticket_id, t.waiting_on) for t in d.tickets_of("ana")] == [("T-1", rma)]
    assert d.queue(Tier.L3, MONDAY).waiting_on_third_party == 2
    assert [a.agent_id for a in d.decide(MONDAY)] == ["tom"]
    d.apply_ticket(ticket("T-1", assignee="ana", event_count=4))  # the third party answered
    d.apply_ticket(english("T-3", assignee="tom", status=TicketStatus.RESOLVED))
    assert d.queue(Tier.L3, MONDAY).waiting_on_third_party == 0
    assert (d.load("ana"), d.load("tom")) == (1, 0)


def test_a_crowded_tier_names_eight_passed_over_and_counts_the_rest_by_standing() -> None:
    lines = ["agents:"] + [
        f"  - {{id: a{n:02}, name: A{n}, email: a{n}@d.example, tiers: [L1, L2, L3], "
        f"languages: [es], calendar: 24x7, capacity: 1}}"
        for n in range(20)
    ]
    d = Desk(parse_agents("\n".join(lines) + "\n", "agents.yaml"), MONDAY)
    for n in range(5, 10):
        d.apply_presence(f"a{n:02}", Presence.AWAY)
    d.apply_ticket(ticket("T-1", skills=()))
    [assignment] = d.decide(MONDAY)
    assert assignment.agent_id == "a00"
    passed = assignment.explanation[1]
    named = [f"a{n:02} (" for n in range(1, 9)]
    assert all(name in passed for name in named) and "a09 (" not in passed
    assert passed.endswith("a08 (away); and 10 able, 1 away")
