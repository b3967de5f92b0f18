"""Acceptance: an assignee who does not accept in time loses the ticket to the next best
agent; one who goes away gives back what they had not accepted."""

from datetime import timedelta

from engine.contract import Presence, Priority
from engine.contract.escalation import Handover
from engine.workers.agents import parse_agents
from engine.workers.desk import Assignment, Desk, Release
from engine.workers.escalation import load_escalation
from tests.unit.workers.test_desk import AGENTS, MONDAY, ticket

POLICY = load_escalation(None)


def accepting_desk() -> Desk:
    return Desk(parse_agents(AGENTS, "agents.yaml"), MONDAY, POLICY.acceptance)


def assigned(d: Desk, agent: str, priority: Priority = Priority.P1, version: int = 2) -> None:
    d.apply_ticket(
        ticket("T-1", priority=priority, assignee=agent, assigned_at=MONDAY, event_count=version)
    )


def test_a_p1_not_accepted_within_15_minutes_goes_to_the_next_best_agent() -> None:
    d = accepting_desk()
    assigned(d, "ana")
    assert d.decide(MONDAY + timedelta(minutes=14)) == []
    [taken] = d.decide(MONDAY + timedelta(minutes=15))
    assert isinstance(taken, Assignment)
    assert (taken.agent_id, taken.previous, taken.handover) == ("eva", "ana", Handover.NOT_ACCEPTED)
    assert taken.explanation[0].startswith("not accepted by ana within 15 minutes")
    assert "ana (did not accept it in time)" in taken.explanation[2]
    [lapse] = d.take_lapses()
    assert (lapse.agent_id, lapse.reassigned_to) == ("ana", "eva")
    assert d.load("eva") == 1 and d.load("ana") == 0


def test_an_accepted_ticket_stays_and_its_time_to_accept_is_counted() -> None:
    d = accepting_desk()
    assigned(d, "ana")
    accepted_at = MONDAY + timedelta(minutes=3)
    d.apply_ticket(
        ticket("T-1", priority=Priority.P1, assignee="ana", assigned_at=MONDAY,
               accepted_at=accepted_at, event_count=3)
    )  # fmt: skip
    assert d.decide(MONDAY + timedelta(hours=2)) == []
    [acceptance] = d.take_acceptances()
    assert (acceptance.priority, acceptance.seconds) == (Priority.P1, 180.0)


def test_with_nobody_else_qualified_the_ticket_stays_and_the_lapse_is_told_once() -> None:
    d = accepting_desk()
    d.apply_presence("eva", Presence.SIGNED_OUT)
    assigned(d, "ana")
    assert d.decide(MONDAY + timedelta(minutes=16)) == []
    [lapse] = d.take_lapses()
    assert lapse.reassigned_to is None
    assert d.decide(MONDAY + timedelta(hours=3)) == [] and d.take_lapses() == []
    assert d.owner("T-1") == "ana"


def test_p3_acceptance_counts_the_assignees_business_hours() -> None:
    d = accepting_desk()
    friday_five_pm = MONDAY - timedelta(days=3) + timedelta(hours=7)  # 17:00 in Mexico City
    d.apply_ticket(ticket("T-1", assignee="ana", assigned_at=friday_five_pm, event_count=2))
    assert d.decide(MONDAY + timedelta(hours=1)) == []  # 1 h Friday + 2 h Monday so far
    [taken] = d.decide(MONDAY + timedelta(hours=2))
    assert isinstance(taken, Assignment) and taken.previous == "ana"


def test_going_away_gives_back_what_was_not_accepted() -> None:
    d = accepting_desk()
    assigned(d, "ana")
    d.apply_ticket(
        ticket("T-2", assignee="ana", assigned_at=MONDAY, accepted_at=MONDAY, event_count=2)
    )
    d.apply_presence("ana", Presence.AWAY)
    [taken] = d.decide(MONDAY)
    assert isinstance(taken, Assignment)
    assert (taken.ticket_id, taken.agent_id, taken.handover) == ("T-1", "eva", Handover.GIVEN_BACK)
    assert d.owner("T-2") == "ana"


def test_going_away_with_nobody_to_take_over_releases_to_the_queue() -> None:
    d = accepting_desk()
    d.apply_presence("eva", Presence.SIGNED_OUT)
    assigned(d, "ana")
    d.apply_presence("ana", Presence.SIGNED_OUT)
    [released] = d.decide(MONDAY)
    assert isinstance(released, Release)
    assert (released.ticket_id, released.agent_id) == ("T-1", "ana")
    assert "nobody else can take it" in released.explanation[0]


def test_a_reassignment_the_processor_refused_lapses_back_to_the_assignee() -> None:
    d = accepting_desk()
    assigned(d, "ana")
    d.decide(MONDAY + timedelta(minutes=15))
    assert d.owner("T-1") == "eva"
    # ana accepted just before: the processor refuses the reassignment (if_unaccepted)
    d.apply_ticket(
        ticket("T-1", priority=Priority.P1, assignee="ana", assigned_at=MONDAY,
               accepted_at=MONDAY + timedelta(minutes=14), event_count=3)
    )  # fmt: skip
    assert d.owner("T-1") == "ana" and d.load("eva") == 0
