"""While Kafka is away a process says so once, a summary a minute, and once when it is back;
its Kafka clients' complaints are counted instead of written."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import pytest

from engine.outage_log import (
    KAFKA_COMPLAINT,
    KafkaOutageFilter,
    Reachability,
    Server,
    accepts_a_connection,
    bootstrap_servers,
    is_kafka_client_complaint,
    wait_until_kafka_answers,
)


def record(
    name: str, level: int = logging.WARNING, msg: str = "Connect call failed"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


@pytest.mark.parametrize(
    ("bootstrap", "servers"),
    [
        ("127.0.0.1:9092", (("127.0.0.1", 9092),)),
        ("a:1, b:2", (("a", 1), ("b", 2))),
        ("[::1]:9092", (("::1", 9092),)),
        ("", ()),
        ("no-port", ()),
    ],
)
def test_bootstrap_servers_are_host_and_port_pairs(
    bootstrap: str, servers: tuple[Server, ...]
) -> None:
    assert bootstrap_servers(bootstrap) == servers


@pytest.mark.parametrize(
    ("name", "level", "complaint"),
    [
        ("kafka.net.connection", logging.WARNING, True),
        ("kafka", logging.ERROR, True),
        ("aiokafka.consumer.group_coordinator", logging.ERROR, True),
        ("faust.transport.drivers.aiokafka", logging.WARNING, True),
        ("kafka.conn", logging.INFO, False),
        ("kafkaesque", logging.ERROR, False),
        ("engine.kafka.loop", logging.ERROR, False),
        ("engine.triage.processor", logging.CRITICAL, False),
    ],
)
def test_only_the_kafka_clients_warnings_are_complaints(
    name: str, level: int, complaint: bool
) -> None:
    assert is_kafka_client_complaint(record(name, level)) is complaint


def test_a_complaint_while_kafka_answers_waits_for_the_check_and_nothing_is_said() -> None:
    state = Reachability()
    assert state.complaint("Heartbeat failed: rebalance in progress")
    assert state.probed(10.0, reachable=True) is None
    assert not state.away
    assert state.complaint("again")


def test_no_complaint_no_outage_even_if_a_probe_fails() -> None:
    assert Reachability().probed(10.0, reachable=False) is None


def test_an_outage_is_said_once_summarised_each_minute_and_its_end_said_once() -> None:
    state = Reachability(summary_every=60)
    assert state.complaint("Connect call failed ('127.0.0.1', 9092)")
    assert state.complaint("Unable to update metadata")

    lost = state.probed(100.0, reachable=False)
    assert lost is not None and lost.startswith("Kafka unreachable")
    assert "Connect call failed ('127.0.0.1', 9092)" in lost
    assert state.away

    assert not any(state.complaint(f"complaint {n}") for n in range(500))
    assert state.probed(130.0, reachable=False) is None
    summary = state.probed(160.0, reachable=False)
    assert summary == (
        "Kafka still unreachable after 60 s (502 client messages held back in the last 60 s)"
    )
    assert not state.complaint("one more")
    assert state.probed(200.0, reachable=False) is None

    back = state.probed(205.0, reachable=True)
    assert back == "Kafka reachable again after 105 s (503 client messages held back)"
    assert not state.away
    assert state.complaint("rebalancing after the outage")
    assert state.probed(207.0, reachable=True) is None


def test_the_quoted_complaint_is_bounded() -> None:
    state = Reachability()
    state.complaint("x" * 10_000)
    lost = state.probed(1.0, reachable=False)
    assert lost is not None and len(lost) < 600


class FakeProbe:
    def __init__(self) -> None:
        self.reachable = True
        self.asked: list[tuple[Server, ...]] = []

    def __call__(self, servers: Sequence[Server]) -> bool:
        self.asked.append(tuple(servers))
        return self.reachable


class Written(logging.Handler):
    """A handler that keeps what passes its filters."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def handler_with_outage_filter(
    probe: FakeProbe, now: list[float], watch: bool = False
) -> tuple[Written, KafkaOutageFilter]:
    written = Written()
    outage = KafkaOutageFilter(
        written,
        [("127.0.0.1", 9)],
        probe=probe,
        clock=lambda: now[0],
        watch=watch,
        sleep=time.sleep if watch else lambda seconds: None,  # a watch sleeps between checks
    )
    written.addFilter(outage)
    logger = logging.getLogger("engine.outage_log")
    logger.addHandler(written)
    logger.propagate = False
    return written, outage


@pytest.fixture(autouse=True)
def outage_logger_restored() -> Iterator[None]:
    logger = logging.getLogger("engine.outage_log")
    handlers, propagate = logger.handlers[:], logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.propagate = propagate


def test_complaints_are_written_after_a_check_finds_kafka_and_held_while_it_is_away() -> None:
    probe, now = FakeProbe(), [0.0]
    written, outage = handler_with_outage_filter(probe, now)

    written.handle(record("engine.sla.worker", logging.ERROR, "the engine's own"))
    written.handle(record("aiokafka", msg="Heartbeat failed: rebalance in progress"))
    assert written.lines == ["the engine's own"]  # the complaint waits for the check
    outage.check()
    assert written.lines == ["the engine's own", "Heartbeat failed: rebalance in progress"]

    probe.reachable = False
    written.handle(record("kafka.net.connection", msg="Connection lost: ECONNREFUSED"))
    written.handle(record("aiokafka", msg="Unable to update metadata"))
    outage.check()
    assert written.lines[2].startswith("Kafka unreachable")
    assert "Connection lost: ECONNREFUSED" in written.lines[2]
    for n in range(100):
        written.handle(record("kafka.net.manager", logging.ERROR, f"Connection failed {n}"))
    written.handle(record("engine.kafka.loop", logging.ERROR, "Kafka did not acknowledge"))
    assert len(written.lines) == 4 and written.lines[3] == "Kafka did not acknowledge"

    probe.reachable, now[0] = True, 30.0
    outage.check()
    assert written.lines[4:] == ["Kafka reachable again after 30 s (102 client messages held back)"]
    # the first check asked twice: complaints are written only if Kafka answers twice
    assert probe.asked == [(("127.0.0.1", 9),)] * 4


def test_the_watch_starts_at_the_first_complaint_and_finds_a_closed_port() -> None:
    probe, now = FakeProbe(), [0.0]
    probe.reachable = False
    written, outage = handler_with_outage_filter(probe, now, watch=True)
    written.handle(record("engine.api", msg="not a complaint"))
    assert not probe.asked
    written.handle(record("kafka.net.connection"))
    deadline = time.monotonic() + 30
    while not outage.state.away and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outage.state.away
    assert probe.asked


def test_a_listening_port_accepts_a_connection() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert accepts_a_connection([("127.0.0.1", 9), ("127.0.0.1", port)])
    assert not accepts_a_connection([("127.0.0.1", port)])
    assert not accepts_a_connection([])


def test_a_start_while_kafka_is_away_waits_saying_so_once_and_once_when_it_is_there(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter([False, False, False, True])
    slept: list[float] = []

    with caplog.at_level(logging.WARNING, logger="engine.outage_log"):
        wait_until_kafka_answers(
            [("kafka-1", 9092), ("kafka-2", 9092)],
            probe=lambda servers: next(answers),
            sleep=slept.append,
            every=2.0,
        )
    assert slept == [2.0, 2.0]
    assert [r.getMessage() for r in caplog.records] == [
        "Kafka at kafka-1:9092,kafka-2:9092 does not accept connections; waiting for it "
        "before starting",
        "Kafka at kafka-1:9092,kafka-2:9092 accepts connections after 4 s; starting",
    ]


def test_a_start_with_kafka_there_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.outage_log"):
        wait_until_kafka_answers([("kafka-1", 9092)], probe=lambda servers: True)
    assert not caplog.records


def test_the_engine_s_own_lines_about_kafka_failing_it_are_complaints_too() -> None:
    own = logging.LogRecord("engine.kafka.loop", logging.WARNING, __file__, 1, "x", None, None)
    assert not is_kafka_client_complaint(own)
    for key, value in KAFKA_COMPLAINT.items():
        setattr(own, key, value)
    assert is_kafka_client_complaint(own)
