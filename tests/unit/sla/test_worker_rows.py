"""The SLA worker's row writes, with its Kafka topics replaced by recorders: a resolution
sends a tombstone and forgets the ticket; a tick in flight does not bring the row back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.errors import KafkaTimeoutError

from engine.clock import FrozenClock
from engine.contract import (
    CustomerProfile,
    RecordDeadLettered,
    SupportPlan,
    TicketState,
    TicketStatus,
    TicketUpdated,
    TicketUpdatedData,
    parse_record,
    to_json,
)
from engine.contract.customers import CustomerDirectory
from engine.contract.topics import TICKET_RECORD_MAX_BYTES, TICKET_STATE
from engine.metrics import SLA_ROWS
from engine.settings import Settings
from engine.sla.calendars import DEFAULT_CALENDARS
from engine.sla.worker import SlaWorker
from tests.unit.sla.test_facts_and_index import opened_ticket

NOW = datetime(2026, 11, 23, 16, tzinfo=UTC)
KEY = b"T-AAAAAAAAAAAAA"


def state(ticket: TicketState) -> bytes:
    record = TicketUpdated(
        event_id=f"ticket.updated:{ticket.event_count}", occurred_at=ticket.updated_at,
        source="test", data=TicketUpdatedData(ticket=ticket),
    )  # fmt: skip
    return to_json(record)


def overdue() -> TicketState:
    """A P1 ticket on 24x7 opened three hours ago: its breach is due."""
    opened = NOW - timedelta(hours=3)
    profile = CustomerProfile(customer_id="acme", plan=SupportPlan.ALWAYS, timezone="UTC")
    return opened_ticket().model_copy(
        update={"opened_at": opened, "updated_at": opened, "priority_since": opened,
                "status_since": opened, "customer": profile}
    )  # fmt: skip


def resolved(ticket: TicketState) -> TicketState:
    return ticket.model_copy(
        update={"status": TicketStatus.RESOLVED, "status_since": NOW, "resolved_at": NOW,
                "updated_at": NOW, "event_count": ticket.event_count + 1}
    )  # fmt: skip


class Recorder:
    """A topic's send: records (key, value) and answers with an acknowledged future,
    after ``gate`` opens when one is given."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.sent: list[tuple[bytes, bytes | None]] = []
        self.gate = gate
        self.called = asyncio.Event()

    async def send(self, key: bytes, value: bytes | None) -> asyncio.Future[None]:
        self.sent.append((key, value))
        self.called.set()
        if self.gate is not None:
            await self.gate.wait()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def on_topic(recorder: Recorder) -> Callable[[str, bytes, bytes], Awaitable[asyncio.Future[None]]]:
    """The recorder as the output producer's send, which names its topic."""

    async def send(topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        return await recorder.send(key, value)

    return send


def worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gate: asyncio.Event | None = None
) -> tuple[SlaWorker, Recorder, Recorder]:
    settings = Settings(state_dir=tmp_path, bootstrap_servers="127.0.0.1:1")
    sla = SlaWorker(settings, DEFAULT_CALENDARS, CustomerDirectory([]), FrozenClock(NOW))
    clocks, alerts = Recorder(), Recorder(gate)
    monkeypatch.setattr(sla.clocks_topic, "send", clocks.send)
    monkeypatch.setattr(sla.alerts, "send", on_topic(alerts))
    sla.index.assign(0, [])
    sla.ready = True
    return sla, clocks, alerts


async def breach_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SlaWorker, Recorder, asyncio.Event, asyncio.Task[None]]:
    """A worker whose tick sent an overdue ticket's breach, not acknowledged until the
    gate opens: (worker, its row writes, the gate, the tick)."""
    gate = asyncio.Event()
    sla, clocks, alerts = worker(tmp_path, monkeypatch, gate)
    await sla.on_state(0, state(overdue()))
    tick = asyncio.create_task(sla.tick())
    await alerts.called.wait()
    return sla, clocks, gate, tick


def test_the_dead_letter_of_a_state_as_large_as_its_topic_takes_fits_the_workers_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Larger than Kafka's default request, it failed the batch at every restart."""

    async def scenario() -> None:
        sla, _, _ = worker(tmp_path, monkeypatch)
        letters = Recorder()
        monkeypatch.setattr(sla.dead_letters, "send", letters.send)
        await sla.on_state(0, b"x" * TICKET_RECORD_MAX_BYTES)
        ((_, letter),) = letters.sent
        assert letter is not None
        assert len(letter) + 1024 < sla.app.conf.producer_max_request_size

    asyncio.run(scenario())


def test_a_resolution_sends_a_tombstone_and_forgets_the_ticket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        sla, clocks, _ = worker(tmp_path, monkeypatch)
        await sla.on_state(0, state(overdue()))
        assert KEY in sla.clocks.data and len(sla.index) == 1
        await sla.on_states([(0, KEY, state(resolved(overdue())))])
        assert clocks.sent[-1] == (KEY, None)
        assert KEY not in sla.clocks.data and len(sla.index) == 0
        assert SLA_ROWS._value.get() == 0
        written = len(clocks.sent)
        note = resolved(overdue()).model_copy(update={"event_count": 3})
        assert await sla.on_state(0, state(note)) is None  # resolved, no row: nothing
        assert len(clocks.sent) == written

    asyncio.run(scenario())


def test_a_deleted_ticket_state_deletes_its_row_and_an_unknown_one_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        sla, clocks, _ = worker(tmp_path, monkeypatch)
        await sla.on_states([(0, KEY, state(overdue())), (0, b"T-UNKNOWN", None), (0, None, None)])
        assert [key for key, _ in clocks.sent] == [KEY]
        await sla.on_states([(0, KEY, None)])
        assert clocks.sent[-1] == (KEY, None)
        assert KEY not in sla.clocks.data and len(sla.index) == 0

    asyncio.run(scenario())


def test_a_tick_in_flight_does_not_bring_back_a_row_a_resolution_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        sla, clocks, gate, tick = await breach_in_flight(tmp_path, monkeypatch)
        resolution = asyncio.create_task(sla.on_states([(0, KEY, state(resolved(overdue())))]))
        for _ in range(10):
            await asyncio.sleep(0)
        gate.set()
        await tick
        await resolution
        assert clocks.sent[-1] == (KEY, None)
        assert KEY not in sla.clocks.data and len(sla.index) == 0

    asyncio.run(scenario())


def test_a_state_the_worker_cannot_work_out_is_dead_lettered_and_the_next_one_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A date in the last hours of year 9999 overflows the calendar (OverflowError, which
    no parse refuses): that record becomes a dead letter, the batch goes on."""
    far = datetime(9999, 12, 31, 22, tzinfo=UTC)
    poison = opened_ticket().model_copy(
        update={"ticket_id": "T-BBBBBBBBBBBBB", "opened_at": far, "updated_at": far,
                "priority_since": far, "status_since": far}
    )  # fmt: skip

    async def scenario() -> None:
        sla, clocks, _ = worker(tmp_path, monkeypatch)
        letters = Recorder()
        monkeypatch.setattr(sla.dead_letters, "send", letters.send)
        await sla.on_states([(0, None, state(poison)), (0, KEY, state(overdue()))])
        assert [key for key, _ in clocks.sent] == [KEY]
        assert KEY in sla.clocks.data and len(sla.index) == 1
        (letter,) = [parse_record(value) for _, value in letters.sent if value is not None]
        assert isinstance(letter, RecordDeadLettered)
        assert "out of range" in letter.data.reason
        assert letter.data.origin == TICKET_STATE

    asyncio.run(scenario())


def test_a_due_row_the_worker_cannot_read_is_dropped_as_a_dead_letter_and_the_tick_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its changelog may hold what the worker did not write: a tick that raised on it
    would stop the timer at every start."""
    other = b"T-BBBBBBBBBBBBB"

    async def scenario() -> None:
        sla, _, alerts = worker(tmp_path, monkeypatch)
        letters = Recorder()
        monkeypatch.setattr(sla.dead_letters, "send", letters.send)
        await sla.on_state(0, state(overdue()))
        await sla.on_state(0, state(overdue().model_copy(update={"ticket_id": other.decode()})))
        sla.clocks.data[KEY] = b'{"kind": "sla.clock_updated", "data": {}}'
        await sla.tick()
        assert [key for key, _ in alerts.sent] == [other]
        assert KEY not in sla.clocks.data
        (letter,) = [parse_record(value) for _, value in letters.sent if value is not None]
        assert isinstance(letter, RecordDeadLettered)
        assert letter.data.reason.startswith("not a usable SLA row: sla.clock_updated.event_id")

    asyncio.run(scenario())


def test_a_worker_that_did_not_run_for_longer_than_its_session_holds_its_alerts_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped (SIGSTOP) past its group session, the worker was put out of the group and
    another emitted what fell due: it emits nothing until its group answers again."""

    async def scenario() -> None:
        sla, _, alerts = worker(tmp_path, monkeypatch)
        seconds = iter([100.0, 130.0, 135.0, 141.0])
        sla.monotonic = lambda: next(seconds)
        await sla.tick()  # 100: nothing due yet
        await sla.on_state(0, state(overdue()))
        await sla.tick()  # 130: 30 s after the last tick, longer than the session
        await sla.tick()  # 135: still within the quiet session
        assert alerts.sent == []
        await sla.tick()  # 141: not put out of the group after all: alerts again
        assert len(alerts.sent) == 1

    asyncio.run(scenario())


class Refusing(Recorder):
    """A topic whose acknowledgement fails for ``refused`` keys, until ``refused`` empties."""

    def __init__(self, refused: set[bytes]) -> None:
        super().__init__()
        self.refused = refused

    async def send(self, key: bytes, value: bytes | None) -> asyncio.Future[None]:
        self.sent.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if key in self.refused:
            done.set_exception(KafkaTimeoutError("not acknowledged"))
        else:
            done.set_result(None)
        return done


def test_only_the_alerts_kafka_did_not_acknowledge_are_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = b"T-BBBBBBBBBBBBB"

    async def scenario() -> None:
        sla, _, _ = worker(tmp_path, monkeypatch)
        alerts = Refusing({other})
        monkeypatch.setattr(sla.alerts, "send", on_topic(alerts))
        await sla.on_state(0, state(overdue()))
        await sla.on_state(0, state(overdue().model_copy(update={"ticket_id": other.decode()})))
        await sla.tick()
        assert sorted(key for key, _ in alerts.sent) == [KEY, other]
        alerts.refused.clear()
        await sla.tick()
        # The acknowledged breach is not sent again; the refused one is.
        assert sorted(key for key, _ in alerts.sent) == [KEY, other, other]

    asyncio.run(scenario())


def test_an_alert_kafka_took_whose_row_it_did_not_is_not_sent_again_only_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker lost between the alert's acknowledgement and the row's: the next tick
    sends the row again, not the alert (which would be a duplicate)."""

    async def scenario() -> None:
        sla, _, alerts = worker(tmp_path, monkeypatch)
        await sla.on_state(0, state(overdue()))
        clocks = Refusing({KEY})
        monkeypatch.setattr(sla.clocks_topic, "send", clocks.send)
        await sla.tick()
        assert len(alerts.sent) == 1 and len(clocks.sent) == 1
        clocks.refused.clear()
        await sla.tick()
        assert len(alerts.sent) == 1
        assert clocks.sent[-1] == clocks.sent[0]  # the same row, now acknowledged
        await sla.tick()
        assert len(clocks.sent) == 2  # and not again

    asyncio.run(scenario())


def test_a_worker_taking_a_partition_over_counts_the_alerts_its_previous_owner_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous owner sent the breach and was stopped before its row: the new owner's
    row does not count it, the alerts topic does."""

    async def scenario() -> None:
        previous, _, sent_before = worker(tmp_path, monkeypatch)
        await previous.on_state(0, state(overdue()))
        await previous.tick()
        ((_, breach),) = sent_before.sent
        assert breach is not None

        taker, _, alerts = worker(tmp_path / "taker", monkeypatch)
        await taker.on_state(0, state(overdue()))  # the row as the changelog had it

        async def read_back(bootstrap: str, partitions: object, since_ms: int) -> list[object]:
            assert since_ms <= int(NOW.timestamp() * 1000) - 14 * 60 * 1000
            return [_Record(breach), _Record(b"not json")]

        monkeypatch.setattr("engine.sla.worker.records_since", read_back)
        monkeypatch.setattr(taker.app.assignor, "assigned_actives", lambda: {_TP(TICKET_STATE)})
        await taker._rebuild_index()
        await taker.tick()
        assert alerts.sent == []
        row = taker._stored(KEY.decode())
        assert row is not None and row.progress is not None and row.progress.breaches == 1

    asyncio.run(scenario())


def test_a_revocation_waits_for_the_tick_under_way_to_record_its_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        sla, clocks, gate, tick = await breach_in_flight(tmp_path, monkeypatch)
        rows_before = len(clocks.sent)
        revoked = asyncio.create_task(sla._on_revoked(None))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not revoked.done()
        gate.set()
        await revoked
        assert len(clocks.sent) == rows_before + 1  # the breach's row, before giving up
        assert sla.ready is False
        await tick

    asyncio.run(scenario())


class _Record:
    def __init__(self, value: bytes) -> None:
        self.value = value


class _TP:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.partition = 0

    def __hash__(self) -> int:
        return hash((self.topic, self.partition))
