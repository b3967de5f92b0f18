"""Every party is told: the customer's side of a ticket (requester, parties, the customer's
notification contacts), alarms' contacts, and the agent a ticket is assigned to."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.contract import (
    ActivityType,
    Channel,
    CustomerProfile,
    Priority,
    TicketActivity,
    TicketActivityData,
    TicketRouted,
    TicketState,
    TicketStatus,
    Tier,
    to_json,
)
from engine.contract.customers import load_directory
from engine.notify.notices import (
    Recipients,
    acknowledgement,
    assignment,
    customer_recipients,
    update,
)
from engine.notify.notifier import notice_for
from engine.settings import Settings
from engine.workers.agents import load_agents
from tests.unit.notify.test_notices import routed_state

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]
SENDER = "soporte@support.example.com"
DOMAIN = "support.example.com"
AGENTS = load_agents(ROOT / "deploy" / "agents.example.yaml")


def ticket(**fields: Any) -> TicketState:
    values: dict[str, Any] = {
        "ticket_id": "T-ABCDEFGHIJKLM", "status": TicketStatus.OPEN, "channel": Channel.EMAIL,
        "subject": "Central caída", "requester": "ana@acme.example", "customer_id": "acme",
        "opened_at": T0, "updated_at": T0, "priority": Priority.P1, "category": "pbx_down",
        "tier": Tier.L3, "special_routes": (), "tags": (), "event_count": 1,
        "recent_event_ids": ("e1",), "ruleset_version": "v",
    }  # fmt: skip
    return TicketState.model_validate({**values, **fields})


def alarm(**fields: Any) -> TicketState:
    return ticket(
        channel=Channel.SNMP, requester="pbx-mty-1", subject="pbx-mty-1: IF-MIB::linkDown",
        **fields,
    )  # fmt: skip


def routed(state: TicketState) -> TicketRouted:
    return routed_state(state)


def activity(
    state: TicketState, kind: ActivityType, event: str = "act-1", **fields: Any
) -> TicketActivity:
    return TicketActivity(
        event_id=event, occurred_at=T0, source="api",
        data=TicketActivityData.model_validate(
            {"ticket_id": state.ticket_id, "activity": kind, "actor": "marta", "ticket": state,
             **fields}
        ),
    )  # fmt: skip


def informed(state: TicketState) -> TicketActivity:
    return activity(state, ActivityType.CUSTOMER_INFORMED, message="Cambiamos la fuente.")


@pytest.mark.parametrize(
    ("state", "contacts", "expected"),
    [
        (ticket(parties=("luis@acme.example",)), ("noc@acme.example",),
         Recipients(("ana@acme.example",), ("luis@acme.example", "noc@acme.example"))),
        (ticket(parties=("Luis@Acme.example", "ANA@acme.example")),
         ("luis@acme.example", "noc@acme.example", SENDER.upper(), "postmaster@acme.example"),
         Recipients(("ana@acme.example",), ("luis@acme.example", "noc@acme.example"))),
        (ticket(requester="no-reply@acme.example", parties=("luis@acme.example",)), (),
         Recipients(("luis@acme.example",))),
        (alarm(), ("noc@acme.example", "ti@acme.example"),
         Recipients(("noc@acme.example", "ti@acme.example"))),
        (alarm(), (), None),
        (ticket(requester="mailer-daemon@acme.example"), ("postmaster@acme.example",), None),
    ],
)  # fmt: skip
def test_the_customer_side_is_told_once_each_never_a_mail_system_nor_the_engine(
    state: TicketState, contacts: tuple[str, ...], expected: Recipients | None
) -> None:
    assert customer_recipients(state, contacts, SENDER) == expected


def test_an_update_reaches_the_requester_and_copies_the_parties_and_contacts() -> None:
    state = ticket(parties=("luis@acme.example",))

    notice = update(informed(state), "es", SENDER, DOMAIN, ("noc@acme.example",))

    assert notice is not None and notice.kind == "update"
    message = notice.message
    assert (message["To"], message["Cc"]) == (
        "ana@acme.example",
        "luis@acme.example, noc@acme.example",
    )
    assert message["Subject"] == "[#T-ABCDEFGHIJKLM] Avance de su solicitud: Central caída"
    alone = update(informed(ticket()), "es", SENDER, DOMAIN)
    assert alone is not None and alone.message["Cc"] is None
    assert alone.message["Message-ID"] == message["Message-ID"]


def test_a_mail_tickets_acknowledgement_copies_the_parties_too() -> None:
    notice = acknowledgement(routed(ticket(parties=("luis@acme.example",))), "es", SENDER, DOMAIN)

    assert notice is not None
    assert (notice.message["To"], notice.message["Cc"]) == ("ana@acme.example", "luis@acme.example")


@pytest.mark.parametrize(
    ("language", "subject", "words"),
    [
        ("es", "[#T-ABCDEFGHIJKLM] Detectamos una alarma en pbx-mty-1: IF-MIB::linkDown",
         "Detectamos IF-MIB::linkDown en el equipo pbx-mty-1 y abrimos el ticket T-ABCDEFGHIJKLM"),
        ("en", "[#T-ABCDEFGHIJKLM] We detected an alarm on pbx-mty-1: IF-MIB::linkDown",
         "We detected IF-MIB::linkDown on device pbx-mty-1 and opened ticket T-ABCDEFGHIJKLM"),
    ],
)  # fmt: skip
def test_an_alarm_is_acknowledged_to_the_customers_contacts_in_their_language(
    language: str, subject: str, words: str
) -> None:
    notice = acknowledgement(routed(alarm()), language, SENDER, DOMAIN, ("noc@acme.example",))

    assert notice is not None and notice.to == "noc@acme.example"
    message = notice.message
    assert message["Subject"] == subject
    assert words in message.get_content()
    assert message["Message-ID"] == "<ack.T-ABCDEFGHIJKLM@support.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"


def test_an_alarm_nobody_can_be_told_of_sends_nothing_and_its_updates_speak_of_the_alarm() -> None:
    assert acknowledgement(routed(alarm()), "es", SENDER, DOMAIN) is None
    assert update(informed(alarm()), "es", SENDER, DOMAIN) is None

    notice = update(informed(alarm()), "en", SENDER, DOMAIN, ("noc@globex.example",))

    assert notice is not None and notice.message["To"] == "noc@globex.example"
    assert notice.message["Subject"] == (
        "[#T-ABCDEFGHIJKLM] Update on the alarm on pbx-mty-1: IF-MIB::linkDown"
    )


def assigned(agent: str, event: str = "act-7", explanation: tuple[str, ...] = ()) -> TicketActivity:
    profile = CustomerProfile(customer_id="acme", name="ACME Cobranza")
    state = ticket(assignee=agent, customer=profile)
    return activity(state, ActivityType.ASSIGNED, event, assignee=agent, explanation=explanation)


def test_an_english_speaking_agent_is_told_in_english_with_the_reasons() -> None:
    reasons = ("assigned to tom (Tom Becker): L3, skills trunks", "passed over: ana (away)")

    notice = assignment(assigned("tom", explanation=reasons), AGENTS.agents["tom"], SENDER, DOMAIN)

    assert notice is not None and notice.kind == "assignment"
    assert notice.message["To"] == "tom.becker@desk.example.com"
    assert notice.message["Subject"] == (
        "Ticket T-ABCDEFGHIJKLM assigned to you (P1, L3): Central caída"
    )
    body = notice.message.get_content()
    assert "Priority: P1\nTier: L3\nCustomer: ACME Cobranza\nSubject: Central caída\n" in body
    assert (
        "Why:\n- assigned to tom (Tom Becker): L3, skills trunks\n- passed over: ana (away)\n"
        in body
    )
    assert "Prioridad" not in body


def test_a_spanish_speaking_agent_reads_spanish_first_then_english() -> None:
    notice = assignment(assigned("ana"), AGENTS.agents["ana"], SENDER, DOMAIN)

    assert notice is not None
    assert notice.message["Subject"].startswith("Ticket T-ABCDEFGHIJKLM asignado a usted (P1, L3)")
    body = notice.message.get_content()
    assert body.index("Se le asignó el ticket T-ABCDEFGHIJKLM") < body.index(
        "Ticket T-ABCDEFGHIJKLM is assigned to you"
    )
    assert "Why:" not in body and "Por qué:" not in body


def test_an_assignment_notice_has_a_message_id_of_its_own_activity() -> None:
    ana = AGENTS.agents["ana"]
    first = assignment(assigned("ana", "act-7"), ana, SENDER, DOMAIN)
    again = assignment(assigned("ana", "act-7"), ana, SENDER, DOMAIN)
    other = assignment(assigned("ana", "act-8"), ana, SENDER, DOMAIN)

    assert first is not None and again is not None and other is not None
    assert first.message["Message-ID"] == again.message["Message-ID"]
    assert first.message["Message-ID"] != other.message["Message-ID"]
    assert first.message["Message-ID"].startswith("<asg.")


def test_only_the_agent_now_assigned_is_told() -> None:
    ana = AGENTS.agents["ana"]
    assert assignment(assigned("tom"), ana, SENDER, DOMAIN) is None
    assert assignment(informed(ticket(assignee="ana")), ana, SENDER, DOMAIN) is None


def test_the_notifier_finds_the_contacts_and_the_agent_of_a_record() -> None:
    customers = load_directory(ROOT / "deploy" / "customers.example.yaml")
    settings = Settings(notify_from=SENDER)
    ack = notice_for(to_json(routed(alarm())), customers, settings)
    told = notice_for(to_json(assigned("ana")), customers, settings, AGENTS)
    untold = notice_for(to_json(assigned("ana")), customers, settings)

    assert ack is not None and ack.to == "noc@acme.example, ti.guardia@acme.example"
    assert ack.message["Subject"].startswith("[#T-ABCDEFGHIJKLM] Detectamos una alarma")  # acme: es
    assert told is not None and told.to == "ana.ruiz@desk.example.com"
    assert untold is None
