"""No acknowledgement where it would be backscatter: to a sender whose SPF or DMARC check
failed at the relay, or (when so configured) to a sender no customer owns; and a notice
repeats at most 120 characters of what the sender wrote."""

from __future__ import annotations

import pytest

from engine import metrics
from engine.contract import Channel, SenderCheck, TicketState, to_json
from engine.contract.customers import Customer, CustomerDirectory
from engine.metrics import AckWithheld
from engine.notify.backscatter import withheld_acknowledgement
from engine.notify.notices import MAX_ECHOED_CHARS, acknowledgement, echoed
from engine.notify.notifier import notice_for
from engine.settings import Settings
from tests.unit.notify.test_notices import routed, routed_state

DIRECTORY = CustomerDirectory([Customer(id="acme", domains=("acme.example",))])


def ticket(
    requester: str = "ana@acme.example",
    failed: tuple[SenderCheck, ...] = (),
    channel: Channel = Channel.EMAIL,
) -> TicketState:
    state = routed(requester=requester, channel=channel).data.ticket
    return state.model_copy(update={"requester_failed_checks": failed})


@pytest.mark.parametrize(
    ("state", "ack_unknown_senders", "withheld"),
    [
        (ticket(), True, None),
        (ticket(), False, None),  # a known customer's sender
        (ticket(failed=(SenderCheck.SPF,)), True, AckWithheld.SENDER_FAILED_CHECKS),
        (ticket(failed=(SenderCheck.DMARC,)), False, AckWithheld.SENDER_FAILED_CHECKS),
        (ticket("x@elsewhere.example"), True, None),  # strangers acknowledged by default
        (ticket("x@elsewhere.example"), False, AckWithheld.UNKNOWN_SENDER),
        (ticket("noc", channel=Channel.SNMP), False, None),  # an alarm: the contacts are told
    ],
)
def test_when_an_acknowledgement_is_withheld(
    state: TicketState, ack_unknown_senders: bool, withheld: AckWithheld | None
) -> None:
    assert withheld_acknowledgement(state, DIRECTORY, ack_unknown_senders) == withheld


def withheld_count(reason: AckWithheld) -> float:
    value = metrics.ACKS_WITHHELD.labels(reason)._value.get()
    return float(value)


@pytest.mark.parametrize(
    ("state", "settings", "reason"),
    [
        (ticket(failed=(SenderCheck.SPF,)), Settings(), AckWithheld.SENDER_FAILED_CHECKS),
        (
            ticket("x@elsewhere.example"),
            Settings(notify_ack_unknown_senders=False),
            AckWithheld.UNKNOWN_SENDER,
        ),
    ],
)
def test_the_notifier_sends_no_withheld_acknowledgement_and_counts_it(
    state: TicketState, settings: Settings, reason: AckWithheld
) -> None:
    before = withheld_count(reason)

    assert notice_for(to_json(routed_state(state)), DIRECTORY, settings) is None
    assert withheld_count(reason) == before + 1
    kept = state.model_copy(update={"requester_failed_checks": (), "requester": "a@acme.example"})
    assert notice_for(to_json(routed_state(kept)), DIRECTORY, settings) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Central caída", "Central caída"),
        ("x" * MAX_ECHOED_CHARS, "x" * MAX_ECHOED_CHARS),
        ("x" * (MAX_ECHOED_CHARS + 1), "x" * (MAX_ECHOED_CHARS - 1) + "…"),
        ("a\r\nb", "a b"),
        ("word " * 100, ("word " * 24).rstrip() + "…"),
    ],
)
def test_an_echoed_subject_is_one_bounded_line(text: str, expected: str) -> None:
    assert echoed(text) == expected
    assert len(echoed(text)) <= MAX_ECHOED_CHARS


def test_the_acknowledgement_repeats_at_most_120_characters_of_the_subject() -> None:
    spam = "Buy cheap headsets now at http://spam.example/ " * 20
    state = routed().data.ticket.model_copy(update={"subject": spam})

    notice = acknowledgement(routed_state(state), "es", "s@x.example", "x.example")

    assert notice is not None
    echoed_part = str(notice.message["Subject"]).partition(": ")[2]
    assert len(echoed_part) == MAX_ECHOED_CHARS and echoed_part.endswith("…")
