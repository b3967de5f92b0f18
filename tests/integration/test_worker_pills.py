"""No single record stops the SLA worker, the entitlements ledger or the tier workers: each,
run alone against the real broker, reads hostile records (not JSON, not UTF-8, the wrong
kind, a tombstone, a value near Kafka's limit, dates at the end of year 9999, numbers past
a float, 100,000-character strings, unknown enum values, control characters) followed by
an ordinary one; the ordinary one still has its effect, each record it cannot use is a
dead letter with its reason, a tombstone on a compacted topic deletes its key, and the
process is still the one started."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.contract import (
    CustomerProfile,
    EntitlementToppedUp,
    EntitlementTopUpData,
    SupportPlan,
    TicketState,
    TicketUpdated,
    TicketUpdatedData,
    to_json,
)
from engine.contract.topics import (
    DEAD_LETTERS,
    ENTITLEMENT_BALANCES,
    ENTITLEMENT_EVENTS,
    SLA_ALERTS,
    SLA_CLOCKS,
    TICKET_EVENTS,
    TICKET_STATE,
    named,
)
from engine.entitlements.ledger import balance_record, opening_balance
from tests.integration.harness import ComponentProcess, TopicReader, engine_env, wait_until
from tests.integration.test_tier_workers import agents_file
from tests.unit.sla.test_facts_and_index import opened_ticket

END_OF_TIME = datetime(9999, 12, 31, 23, 50, tzinfo=UTC)
LONG_AGO = datetime(1900, 1, 1, tzinfo=UTC)  # half a million update deadlines missed since
NEAR_THE_LIMIT = "x" * 900_000  # a ticket topic takes records of up to 1,000,000 bytes

Hostile = list[tuple[bytes, bytes | None]]  # key, value


def new_ticket_id() -> str:
    return "T-" + uuid.uuid4().hex[:13].upper()


def ticket(**changes: Any) -> TicketState:
    """An open P1 ticket of a 24x7 customer, opened now, nobody assigned."""
    now = datetime.now(UTC)
    profile = CustomerProfile(customer_id="acme", plan=SupportPlan.ALWAYS, timezone="UTC")
    return opened_ticket().model_copy(
        update={"ticket_id": new_ticket_id(), "opened_at": now, "updated_at": now,
                "priority_since": now, "status_since": now, "customer": profile, **changes}
    )  # fmt: skip


def state(ticket: TicketState) -> bytes:
    record = TicketUpdated(
        event_id=f"ticket.updated:{uuid.uuid4()}", occurred_at=ticket.updated_at,
        source="test", data=TicketUpdatedData(ticket=ticket),
    )  # fmt: skip
    return to_json(record)


def edited(record: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """``record`` with its JSON changed by ``edit``: values no model would build."""
    parsed = json.loads(record)
    edit(parsed)
    return json.dumps(parsed).encode()


def with_ticket(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record["data"]["ticket"].update(fields)


def with_data(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record["data"].update(fields)


def hostile_states() -> tuple[Hostile, Hostile]:
    """Records on the ticket state topic: (those to dead-letter, those a worker may use)."""
    unusable: Hostile = [
        (b"pills-1", b"not json {"),
        (b"pills-2", b"\xff\xfe\x00 not utf-8"),
        (b"pills-3", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        (b"pills-4", edited(state(ticket()), lambda r: r.update(kind="ticket.activity"))),
        (b"pills-5", edited(state(ticket()), with_ticket(priority="P9"))),
        (b"pills-6", edited(state(ticket()), with_ticket(priority="P9", subject=NEAR_THE_LIMIT))),
        (b"pills-7", state(ticket(opened_at=END_OF_TIME, updated_at=END_OF_TIME,
                                  priority_since=END_OF_TIME, status_since=END_OF_TIME))),
        (b"pills-8", edited(state(ticket()), with_ticket(opened_at="+10000-01-01T00:00:00Z"))),
    ]  # fmt: skip
    odd: Hostile = [
        (b"pills-9", state(ticket(subject="x" * 100_000, requester="\x00\r\n" * 1000))),
        (b"pills-10", state(ticket(ticket_id="T-\x00\x1b[2J\r\n", event_count=10**30))),
        (b"pills-11", edited(state(ticket()), with_ticket(informed_count=10**400))),
        (b"pills-12", state(ticket(opened_at=LONG_AGO, updated_at=LONG_AGO,
                                   priority_since=LONG_AGO, status_since=LONG_AGO))),
        (b"\xff\xfe not utf-8", None),  # deletes no ticket anybody knows
    ]  # fmt: skip
    return unusable, odd


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * 1024 * 1024)


def send_in_order(bootstrap: str, topic: str, records: Hostile) -> None:
    """One partition: each record waits behind the ones before it."""
    out = producer(bootstrap)
    for key, value in records:
        out.send(topic, value, key=key, partition=0)
    out.flush(30)
    out.close()


def dead_lettered(letters: TopicReader, source: str, origin: str, payload: bytes) -> bool:
    return bool(
        letters.matching(
            lambda _k, v: (
                v["source"] == source
                and v["data"]["origin"] == origin
                and v["data"]["payload_sha256"] == sha256(payload)
            )
        )
    )


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def wait_for_letters(
    letters: TopicReader, source: str, origin: str, records: Hostile, process: ComponentProcess
) -> None:
    def missing() -> list[bytes]:
        return [k for k, v in records if not dead_lettered(letters, source, origin, v or b"")]

    wait_until(lambda: not missing(), 90, f"dead letters of {source}", on_timeout=lambda: (
        f"missing: {missing()}\n{process.log()[-4000:]}"))  # fmt: skip


def test_the_sla_worker_dead_letters_what_it_cannot_time_and_times_the_next(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    states_topic = named(TICKET_STATE, topic_prefix)
    unusable, odd = hostile_states()
    deleted = ticket()
    ordinary = ticket()
    send_in_order(topics, states_topic, [
        *unusable, *odd,
        (deleted.ticket_id.encode(), state(deleted)),
        (deleted.ticket_id.encode(), None),  # the ticket's state deleted: its row goes too
        (ordinary.ticket_id.encode(), state(ordinary)),
    ])  # fmt: skip
    # Its own table's changelog, read whole at start, holds a row it did not write.
    unusable_rows: Hostile = [(ordinary.ticket_id.encode(), b"not json {")]
    send_in_order(topics, named(SLA_CLOCKS, topic_prefix), unusable_rows)
    env = engine_env(tmp_path / "state", topics, topic_prefix)
    worker = ComponentProcess("sla", env, tmp_path / "sla.log")
    clocks = TopicReader(topics, named(SLA_CLOCKS, topic_prefix), hostile=True)
    letters = TopicReader(topics, named(DEAD_LETTERS, topic_prefix))
    try:
        clocks.wait_for(lambda key, _: key == ordinary.ticket_id, 120)
        wait_for_letters(letters, "engine.sla", states_topic, unusable, worker)
        rows_topic = named(SLA_CLOCKS, topic_prefix)
        wait_for_letters(letters, "engine.sla", rows_topic, unusable_rows, worker)
        port = int(env["ENGINE_SLA_METRICS_PORT"])
        assert worker.metrics.metric("ticketing_sla_rows_deleted_total", port=port) == 1
        assert worker.process.poll() is None, worker.log()[-3000:]
    finally:
        worker.stop()
        clocks.close()
        letters.close()


def balance_of(customer_id: str) -> Callable[[str | None, dict[str, Any]], bool]:
    return lambda key, _: key == customer_id


def test_the_ledger_dead_letters_what_it_cannot_count_and_counts_the_next(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    events_topic = named(ENTITLEMENT_EVENTS, topic_prefix)
    balances_topic = named(ENTITLEMENT_BALANCES, topic_prefix)
    run = uuid.uuid4().hex[:8]
    topped_up = top_up_record(f"pills-{run}", 2.0)

    def hours(value: float) -> Callable[[dict[str, Any]], None]:
        """Another top-up (its own event id) of ``value`` hours."""

        def edit(record: dict[str, Any]) -> None:
            record.update(event_id=f"topup:{uuid.uuid4()}")
            record["data"].update(hours=value)

        return edit

    unusable: Hostile = [
        (b"pills-1", b"not json {"),
        (b"pills-2", b"\xff\xfe\x00 not utf-8"),
        (b"pills-3", None),  # top-ups are never deleted
        (b"pills-4", state(ticket())),  # a record of another topic
        (b"pills-5", edited(topped_up, hours(float("inf")))),
        (b"pills-6", edited(topped_up, hours(1e308))),
        (b"pills-7", edited(topped_up, with_data(reference=NEAR_THE_LIMIT, hours=0))),
    ]  # fmt: skip
    odd: Hostile = [
        (b"pills-8", edited(topped_up, lambda r: r.update(occurred_at="9999-12-31T23:59:59Z"))),
        (b"pills-9", top_up_record("\x00\x1b[2J\r\n" + "x" * 100_000, 1.0)),
    ]
    # Before the ledger starts: its balances, read whole at start, hold records it cannot
    # read and one customer's balance deleted (a tombstone after it).
    gone = f"gone-{run}"
    unreadable: Hostile = [
        (b"pills-b1", b"not json {"),
        (b"pills-b2", edited(topped_up, lambda r: r.update(kind="entitlement.updated"))),
    ]
    send_in_order(topics, balances_topic, [
        *unreadable,
        (gone.encode(), balance(gone, 3.0)),
        (gone.encode(), None),
        (b"\xff\xfe not utf-8", None),
    ])  # fmt: skip
    ordinary = f"ok-{run}"
    send_in_order(topics, events_topic, [
        (b"pills-big", edited(topped_up, hours(1e308))),  # two of these overflow a float
        *unusable, *odd,
        (gone.encode(), top_up_record(gone, 1.0)),
        (ordinary.encode(), top_up_record(ordinary, 5.0)),
    ])  # fmt: skip
    env = engine_env(tmp_path / "state", topics, topic_prefix)
    ledger = ComponentProcess("entitlements", env, tmp_path / "entitlements.log")
    balances = TopicReader(topics, balances_topic, hostile=True)
    letters = TopicReader(topics, named(DEAD_LETTERS, topic_prefix))
    try:
        found = wait_until(
            lambda: balances.matching(balance_of(ordinary)), 120, "the ordinary top-up's balance",
            on_timeout=ledger.log,
        )  # fmt: skip
        assert found[-1]["data"]["hours_left"] == 5.0
        wait_for_letters(letters, "engine.entitlements", events_topic, unusable, ledger)
        wait_for_letters(letters, "engine.entitlements", balances_topic, unreadable, ledger)
        # Deleted, the balance starts again from nothing.
        assert balances.matching(lambda k, v: k == gone and v["data"]["hours_left"] == 1.0)
        assert ledger.process.poll() is None, ledger.log()[-3000:]
    finally:
        ledger.stop()
        balances.close()
        letters.close()


def top_up_record(customer_id: str, hours: float) -> bytes:
    record = EntitlementToppedUp(
        event_id=f"topup:{uuid.uuid4()}", occurred_at=datetime.now(UTC), source="test",
        data=EntitlementTopUpData(customer_id=customer_id, hours=hours,
                                  reference=uuid.uuid4().hex, actor="test"),
    )  # fmt: skip
    return to_json(record)


def balance(customer_id: str, hours: float) -> bytes:
    record = balance_record(opening_balance(customer_id, hours), "test", datetime.now(UTC), "test")
    return to_json(record)


def test_the_tier_workers_dead_letter_what_they_cannot_read_and_assign_the_next(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    states_topic = named(TICKET_STATE, topic_prefix)
    alerts_topic = named(SLA_ALERTS, topic_prefix)
    unusable, odd = hostile_states()
    # Not accepted yet: its deadline for acceptance is past year 9999.
    overflowing = state(ticket(assignee="marta", assigned_at=END_OF_TIME))
    unusable = [*unusable, (b"pills-13", overflowing)]
    deleted = ticket()
    send_in_order(topics, states_topic, [
        *unusable, *odd,
        (deleted.ticket_id.encode(), state(deleted)),
        (deleted.ticket_id.encode(), None),  # deleted: never assigned
    ])  # fmt: skip
    alerts: Hostile = [(b"pills-a1", b"not json {"), (b"pills-a2", None)]
    send_in_order(topics, alerts_topic, alerts)
    env = engine_env(
        tmp_path / "state", topics, topic_prefix, ENGINE_AGENTS_FILE=str(agents_file(tmp_path, 50))
    )
    workers = ComponentProcess("workers", env, tmp_path / "workers.log")
    decisions = TopicReader(topics, named(TICKET_EVENTS, topic_prefix))
    letters = TopicReader(topics, named(DEAD_LETTERS, topic_prefix))
    ordinary = ticket()
    try:
        send_in_order(topics, states_topic, [(ordinary.ticket_id.encode(), state(ordinary))])
        decisions.wait_for(lambda key, _: key == ordinary.ticket_id, 120)
        # A date at the end of time is no trouble to the desk: only to the SLA worker.
        unreadable = [(key, value) for key, value in unusable if key != b"pills-7"]
        wait_for_letters(letters, "engine.workers", states_topic, unreadable, workers)
        wait_for_letters(letters, "engine.workers", alerts_topic, alerts, workers)
        assert not decisions.matching(lambda key, _: key == deleted.ticket_id)
        assert workers.process.poll() is None, workers.log()[-3000:]
    finally:
        workers.stop()
        decisions.close()
        letters.close()
