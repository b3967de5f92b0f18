"""The escalation matrix: its file, its deadlines, and the steps it takes, each once."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.contract import Priority, SlaAlertData, Tier
from engine.contract.escalation import EscalationReason, EscalationRole
from engine.errors import EngineError
from engine.settings import Settings
from engine.supervisor import check_configuration
from engine.workers.agents import parse_agents
from engine.workers.desk import Lapse
from engine.workers.escalate import Escalations, alert_cause, lapse_cause, steps
from engine.workers.escalation import (
    EscalationFileError,
    load_escalation,
    parse_acceptance,
    parse_escalation,
)
from tests.unit.workers.test_desk import MONDAY, ticket

POLICY = load_escalation(None)
DIRECTORY = parse_agents(
    """\
agents:
  - {id: ana, name: Ana, email: ana@d.example, tiers: [L3], languages: [es], lead: marta}
  - {id: marta, name: Marta, email: marta@d.example, tiers: [L3], languages: [es]}
  - {id: leo, name: Leo, email: leo@d.example, tiers: [L2], languages: [es], lead: marta}
  - {id: sam, name: Sam, email: sam@d.example, tiers: [L1], languages: [en], lead: leo}
on_call:
  - {agent: marta, tier: L3, from: "2026-12-07T00:00:00Z", until: "2026-12-08T00:00:00Z"}
managers:
  - {id: rosa, name: Rosa, email: rosa@d.example}
""",
    "agents.yaml",
)


def breach(repeat: int = 1) -> SlaAlertData:
    return SlaAlertData(
        ticket_id="T-1", obligation="UPD-P1", instance=1, dedup_key="T-1:UPD-P1:1",
        deadline=MONDAY, calendar="24x7 (UTC)", explanation="due 2 h after opening",
        repeat=repeat,
    )  # fmt: skip


def test_the_shipped_matrix_takes_a_p1_breach_to_the_manager() -> None:
    roles = POLICY.roles(Priority.P1, EscalationReason.SLA_BREACH)
    assert EscalationRole.MANAGER in roles


@pytest.mark.parametrize(
    ("text", "assigned", "due"),
    [
        ("15 minutes", MONDAY, MONDAY + timedelta(minutes=15)),
        ("30 seconds", MONDAY, MONDAY + timedelta(seconds=30)),
        # Monday 10:00 in Mexico City: four business hours later is 14:00
        ("4 business hours", MONDAY, MONDAY + timedelta(hours=4)),
        # Friday 17:00 Mexico City: one hour on Friday, three on Monday
        ("4 business hours", MONDAY - timedelta(days=3, hours=-7), MONDAY + timedelta(hours=2)),
        # Monday 10:00: the close of Tuesday (18:00 Mexico City, 00:00 UTC Wednesday)
        ("next business day", MONDAY, datetime(2026, 12, 9, 0, 0, tzinfo=UTC)),
        # Saturday: the close of Monday
        ("next business day", MONDAY - timedelta(days=2), datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
    ],
)
def test_acceptance_deadlines(text: str, assigned: datetime, due: datetime) -> None:
    hours = DIRECTORY.working_hours("ana")
    assert parse_acceptance(text).deadline(assigned, hours) == due


def test_a_bad_matrix_names_every_problem_with_its_line() -> None:
    text = "acceptance:\n  P1: 3 fortnights\nmatrix:\n  P1: {sla_breach: [boss, assignee]}\n"
    with pytest.raises(EscalationFileError) as raised:
        parse_escalation(text, "esc.yaml")
    message = str(raised.value)
    assert "esc.yaml:2: acceptance.P1: '3 fortnights'" in message
    assert "esc.yaml:4: matrix.P1.sla_breach[0]" in message

    complete_but_short = (
        "acceptance:\n  P1: 1 hour\nmatrix:\n  P1: {sla_breach: [manager, manager]}\n"
    )
    with pytest.raises(EscalationFileError) as raised:
        parse_escalation(complete_but_short, "esc.yaml")
    message = str(raised.value)
    assert "esc.yaml:2: acceptance: no entry for P2, P3, P4" in message
    assert "esc.yaml:4: matrix.P1.sla_breach: a role is named twice" in message


def test_a_p1_breach_tells_the_assignee_the_lead_and_the_manager_with_the_arithmetic() -> None:
    state = ticket("T-1", priority=Priority.P1, assignee="ana", subject="PBX down")
    records = steps(alert_cause(state, breach(), "ev-1"), POLICY, DIRECTORY, MONDAY, "test")
    told = {r.data.role: [p.id for p in r.data.recipients] for r in records}
    assert told == {
        EscalationRole.ASSIGNEE: ["ana"],
        EscalationRole.TEAM_LEAD: ["marta"],
        EscalationRole.MANAGER: ["rosa"],
    }
    manager = records[2].data
    assert manager.dedup_key == "T-1:UPD-P1:1:1:manager"
    assert manager.explanation[0].startswith("escalation.P1.sla_breach (")
    assert "due 2 h after opening" in manager.explanation[1]


def test_a_repeated_breach_reaches_the_next_tiers_on_call() -> None:
    state = ticket("T-1", priority=Priority.P1, tier=Tier.L2, assignee="leo")
    records = steps(alert_cause(state, breach(2), "ev-2"), POLICY, DIRECTORY, MONDAY, "test")
    [on_call] = [r.data for r in records if r.data.role is EscalationRole.NEXT_TIER_ON_CALL]
    assert [p.id for p in on_call.recipients] == ["marta"]
    assert "on call for L3 now: marta" in on_call.explanation[0]


def test_without_an_assignee_the_lead_is_the_tiers_leads() -> None:
    state = ticket("T-1", priority=Priority.P1, tier=Tier.L1)
    records = steps(alert_cause(state, breach(), "ev-1"), POLICY, DIRECTORY, MONDAY, "test")
    by_role = {r.data.role: r.data for r in records}
    assert by_role[EscalationRole.ASSIGNEE].recipients == ()
    assert [p.id for p in by_role[EscalationRole.TEAM_LEAD].recipients] == ["leo"]


def test_steps_already_told_are_never_told_again() -> None:
    state = ticket("T-1", priority=Priority.P1, assignee="ana")
    escalations = Escalations()
    escalations.record_alert(breach(), "ev-1", MONDAY)
    first = escalations.to_tell(
        escalations.alert_causes(lambda _: state, MONDAY), POLICY, DIRECTORY, MONDAY, "t"
    )
    assert len(first) == 3
    # a restart: the alert and the steps told are read back from their topics
    restarted = Escalations()
    restarted.record_alert(breach(), "ev-1", MONDAY)
    for record in first:
        restarted.record_told(record.data)
    again = restarted.to_tell(
        restarted.alert_causes(lambda _: state, MONDAY), POLICY, DIRECTORY, MONDAY, "t"
    )
    assert again == []


def test_an_alert_written_twice_tells_its_steps_once() -> None:
    state = ticket("T-1", priority=Priority.P1, assignee="ana")
    escalations = Escalations()
    escalations.record_alert(breach(), "ev-1", MONDAY)
    escalations.record_alert(breach(), "ev-1", MONDAY)  # the SLA worker wrote it again
    told = escalations.to_tell(
        escalations.alert_causes(lambda _: state, MONDAY), POLICY, DIRECTORY, MONDAY, "t"
    )
    assert sorted(record.data.dedup_key for record in told) == [
        "T-1:UPD-P1:1:1:assignee", "T-1:UPD-P1:1:1:manager", "T-1:UPD-P1:1:1:team_lead",
    ]  # fmt: skip


def test_an_alert_of_a_resolved_ticket_is_let_go() -> None:
    escalations = Escalations()
    escalations.record_alert(breach(), "ev-1", MONDAY)
    assert escalations.alert_causes(lambda _: None, MONDAY) == []
    assert escalations.alert_causes(lambda _: None, MONDAY + timedelta(minutes=2)) == []
    state = ticket("T-1", priority=Priority.P1)
    assert escalations.alert_causes(lambda _: state, MONDAY + timedelta(minutes=3)) == []


def test_a_lapse_tells_the_lead_who_it_went_to() -> None:
    state = ticket("T-1", priority=Priority.P1, assignee="ana", assigned_at=MONDAY)
    lapse = Lapse(state, "ana", MONDAY + timedelta(minutes=15), "15 minutes", "marta")
    [told] = steps(lapse_cause(lapse), POLICY, DIRECTORY, MONDAY, "test")
    assert told.data.reason is EscalationReason.NOT_ACCEPTED
    assert [p.id for p in told.data.recipients] == ["marta"]
    assert "within 15 minutes" in told.data.explanation[1]
    assert "reassigned to marta" in told.data.explanation[1]


def test_what_was_told_of_tickets_resolved_before_the_start_is_forgotten() -> None:
    state = ticket("T-1", priority=Priority.P1, assignee="ana")
    escalations = Escalations()
    for record in steps(alert_cause(state, breach(), "ev-1"), POLICY, DIRECTORY, MONDAY, "t"):
        escalations.record_told(record.data)
    escalations.keep_open(lambda _: None)
    escalations.record_alert(breach(), "ev-1", MONDAY)
    again = escalations.to_tell(
        escalations.alert_causes(lambda _: state, MONDAY), POLICY, DIRECTORY, MONDAY, "t"
    )
    assert len(again) == 3  # a ticket the desk does not know is not one it keeps keys for


def test_engine_up_refuses_a_bad_matrix_or_one_that_tells_managers_nobody_named(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "escalation.yaml"
    bad.write_text("acceptance:\n  P1: soon\n")
    example = Path(__file__).parents[3] / "deploy" / "agents.example.yaml"
    with pytest.raises(EscalationFileError, match=r"acceptance\.P1: 'soon'"):
        check_configuration(Settings(agents_file=example, escalation_file=bad))
    without_managers = tmp_path / "agents.yaml"
    without_managers.write_text(example.read_text().split("managers:")[0])
    with pytest.raises(EngineError, match="lists no managers"):
        check_configuration(Settings(agents_file=without_managers))
