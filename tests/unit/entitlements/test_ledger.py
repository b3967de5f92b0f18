"""The support-hours ledger and the entitlement check of triage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from engine.clock import FrozenClock
from engine.contract import (
    ActivityType,
    EntitlementBalanceData,
    EntitlementToppedUp,
    EntitlementTopUpData,
    EntitlementUpdated,
    RecordDeadLettered,
    SpecialRoute,
    TicketActivity,
    TicketActivityData,
    TicketRouted,
    to_json,
)
from engine.contract.customers import Customer, CustomerDirectory
from engine.contract.topics import (
    DEAD_LETTERS,
    ENTITLEMENT_BALANCES,
    ENTITLEMENT_EVENTS,
    TICKET_ACTIVITY,
    TICKET_EVENTS,
    TICKET_RECORD_MAX_BYTES,
    TIER_TOPICS,
)
from engine.entitlements.ledger import apply_event, balance_record, opening_balance
from engine.entitlements.worker import (
    ENTITLEMENT_NEEDED,
    MAX_REQUEST_BYTES,
    Ledger,
    balances_of,
    describe_balance,
)
from engine.triage.publications import publications
from engine.triage.triage import triage
from tests.unit.triage.test_triage import RULES, T0, mail

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
DIRECTORY = CustomerDirectory(
    [
        Customer(id="acme", domains=("acme.example",), support_hours=1, language="en",
                 version="4.0", modules=("callcenter",)),
        Customer(id="free", domains=("free.example",)),
    ]
)  # fmt: skip


def spent(minutes: int, customer: str = "acme", event: str = "a1") -> TicketActivity:
    return TicketActivity(
        event_id=event, occurred_at=T0, source="test",
        data=TicketActivityData(
            ticket_id="T-AAAAAAAAAAAAA", activity=ActivityType.TIME_SPENT, actor="ana",
            minutes=minutes, customer_id=customer,
        ),
    )  # fmt: skip


def top_up(hours: float, reference: str = "INV-1") -> EntitlementToppedUp:
    return EntitlementToppedUp(
        event_id=f"topup:{reference}", occurred_at=T0, source="test",
        data=EntitlementTopUpData(customer_id="acme", hours=hours, reference=reference, actor="x"),
    )  # fmt: skip


def balances(ledger: Ledger) -> dict[str, float]:
    return {customer: balance.hours_left for customer, balance in ledger.balances.items()}


def test_time_spent_is_deducted_and_top_ups_added_once_each() -> None:
    balance = opening_balance("acme", 1.0)
    after = apply_event(balance, spent(45))
    assert after is not None and after.hours_left == 0.25
    assert apply_event(after, spent(45)) is None  # the same event again
    topped = apply_event(after, top_up(5))
    assert topped is not None
    assert (topped.hours_left, topped.topped_up_hours, topped.spent_minutes) == (5.25, 5.0, 45)
    assert "5.25 h left = 1 h from the directory + 5 h topped up - 45 min spent" in (
        describe_balance(topped)
    )


def test_the_ledger_opens_directory_balances_and_records_what_changes() -> None:
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    opening = ledger.opening_outputs()
    assert [(topic, key) for topic, key, _ in opening] == [(ENTITLEMENT_BALANCES, "acme")]
    assert ledger.opening_outputs() == []  # nothing changed since
    (output,) = ledger.outputs_of(TICKET_ACTIVITY, to_json(spent(60)))
    assert isinstance(output[2], EntitlementUpdated)
    assert balances(ledger) == {"acme": 0.0}
    assert ledger.outputs_of(TICKET_ACTIVITY, to_json(spent(60))) == []  # replayed
    assert ledger.outputs_of(TICKET_ACTIVITY, to_json(spent(30, "free", "a2"))) == []
    ledger.outputs_of(ENTITLEMENT_EVENTS, to_json(top_up(2)))
    assert balances(ledger) == {"acme": 2.0}


def test_a_bad_record_is_dead_lettered_naming_its_field() -> None:
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    bad = b'{"kind": "entitlement.topped_up"}'
    ((topic, _, letter),) = ledger.outputs_of(ENTITLEMENT_EVENTS, bad)
    assert topic == DEAD_LETTERS and isinstance(letter, RecordDeadLettered)
    assert "entitlement.topped_up.event_id" in letter.data.reason


def triaged(hours_left: dict[str, float]) -> tuple[TicketRouted, set[str]]:
    """The routed record of a new ticket, and the topics it is published on."""
    event = mail("How do I add an extension?", "<m1@acme.example>")
    outcome = triage(None, event, RULES, T0, DIRECTORY, hours_left)
    found = [p for p in publications(outcome, event, T0, "t") if isinstance(p.record, TicketRouted)]
    assert isinstance(found[0].record, TicketRouted)
    return found[0].record, {p.topic for p in found}


def test_a_customer_without_hours_gets_the_entitlement_route_and_is_told() -> None:
    routed, topics = triaged({"acme": 0.0})
    assert SpecialRoute.ENTITLEMENT_NEEDED in routed.data.route.special_routes
    # Never dropped: queued on its tier as well.
    assert topics == {ENTITLEMENT_NEEDED, TIER_TOPICS[routed.data.ticket.tier]}
    notes = routed.data.classification.explanation
    assert any("acme has 0 support hours left" in note for note in notes)
    # VERSION-LEVEL and EOL-CALLCENTER are on the ticket, from the customer's profile.
    assert {"version-limited", "eol-callcenter"} <= set(routed.data.ticket.tags)

    ledger = Ledger({"acme": opening_balance("acme", 0.0)}, DIRECTORY, FrozenClock(NOW))
    ((topic, key, notice),) = ledger.outputs_of(ENTITLEMENT_NEEDED, to_json(routed))
    assert (topic, key) == (TICKET_EVENTS, routed.data.ticket_id)
    assert isinstance(notice, TicketActivity)
    assert notice.data.activity is ActivityType.CUSTOMER_INFORMED
    assert notice.data.message is not None and "support hours are used up" in notice.data.message


def test_hours_left_or_an_unmetered_customer_route_normally() -> None:
    for hours_left in ({"acme": 0.5}, {}):
        routed, topics = triaged(hours_left)
        assert SpecialRoute.ENTITLEMENT_NEEDED not in routed.data.route.special_routes
        assert ENTITLEMENT_NEEDED not in topics


def test_balances_parse_back() -> None:
    balance = opening_balance("acme", 1.0)
    assert EntitlementBalanceData.model_validate_json(balance.model_dump_json()) == balance


@dataclass(frozen=True)
class Consumed:
    """A consumed record, as much of it as the ledger reads."""

    key: bytes | None
    value: bytes | None
    offset: int
    topic: str = ENTITLEMENT_BALANCES
    partition: int = 0


def test_the_balances_read_at_start_forget_a_deleted_customer_and_dead_letter_the_rest() -> None:
    acme = balance_record(opening_balance("acme", 3.0), "c", NOW, "test")
    gone = balance_record(opening_balance("gone", 5.0), "c", NOW, "test")
    records = [
        Consumed(b"x", b"not json {", 0),
        Consumed(b"gone", to_json(gone), 1),
        Consumed(b"y", to_json(top_up(1)), 2),
        Consumed(b"acme", to_json(acme), 3),
        Consumed(b"gone", None, 4),
    ]
    read = balances_of(records, NOW)
    assert list(read.by_customer) == ["acme"]
    letters = [letter for _, _, letter in read.unreadable]
    assert all(isinstance(letter, RecordDeadLettered) for letter in letters)
    assert [(letter.data.original.offset if letter.data.original else None)
            for letter in letters if isinstance(letter, RecordDeadLettered)] == [0, 2]  # fmt: skip


def test_a_tombstone_or_a_record_of_another_kind_on_an_input_topic_is_a_dead_letter() -> None:
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    for topic, value in ((ENTITLEMENT_EVENTS, None), (ENTITLEMENT_EVENTS, to_json(spent(60)))):
        ((out, _, letter),) = ledger.outputs_of(topic, value)
        assert out == DEAD_LETTERS and isinstance(letter, RecordDeadLettered)
    assert ledger.balances == {}


def test_hours_past_a_float_are_a_dead_letter_and_the_balance_stays() -> None:
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    ledger.outputs_of(ENTITLEMENT_EVENTS, to_json(top_up(1e308, "INV-1")))
    ((out, _, letter),) = ledger.outputs_of(ENTITLEMENT_EVENTS, to_json(top_up(1e308, "INV-2")))
    assert out == DEAD_LETTERS and isinstance(letter, RecordDeadLettered)
    assert "OverflowError" in letter.data.reason
    assert balances(ledger) == {"acme": 1e308}


def test_the_dead_letter_of_a_record_as_large_as_a_ticket_topic_takes_fits_a_request() -> None:
    ledger = Ledger({}, DIRECTORY, FrozenClock(NOW))
    ((_, _, letter),) = ledger.outputs_of(ENTITLEMENT_EVENTS, b"x" * TICKET_RECORD_MAX_BYTES)
    assert len(to_json(letter)) < MAX_REQUEST_BYTES
