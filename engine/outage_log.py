"""What a process logs while Kafka is away: one line when it loses Kafka, a summary every
minute while Kafka stays away, and one line when it is back. Meanwhile the Kafka clients'
own complaints (hundreds a minute per process: every reconnect, metadata refresh and
coordinator lookup) are counted, not written.

Whether Kafka is away is not guessed from the clients' words: a complaint makes the process
try a TCP connection to the bootstrap servers, and Kafka is away when none of them accepts
one. One broker of a cluster stopping is therefore not an outage, and its complaints are
written as before, a moment late."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

KAFKA_CLIENT_LOGGERS = ("kafka", "aiokafka", "faust.transport")
SUMMARY_EVERY_SECONDS = 60.0
PROBE_EVERY_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 2.0
# A broker being killed still accepts connections for a moment: complaints are written
# only when a second attempt this much later is accepted too.
CONFIRM_AFTER_SECONDS = 0.5
QUOTED_COMPLAINT_CHARS = 300
MAX_PENDING = 1_000  # complaints awaiting a connection attempt; more are only counted
CHECKED = "kafka_outage_checked"  # set on a complaint written after Kafka answered
# The ``extra`` of the engine's own log lines that say Kafka failed it: held back with the
# clients' complaints while Kafka is away.
KAFKA_COMPLAINT = {"kafka_complaint": True}

Server = tuple[str, int]
Probe = Callable[[Sequence[Server]], bool]


def bootstrap_servers(bootstrap: str) -> tuple[Server, ...]:
    """``host:port,[v6]:port`` as (host, port) pairs."""
    servers = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return tuple(servers)


def is_kafka_client_complaint(record: logging.LogRecord) -> bool:
    if getattr(record, "kafka_complaint", False):
        return True
    return record.levelno >= logging.WARNING and any(
        record.name == name or record.name.startswith(name + ".") for name in KAFKA_CLIENT_LOGGERS
    )


@dataclass
class Reachability:
    """Kafka's reachability as one process has seen it, and what to say when it changes.

    ``complaint`` is told each Kafka client warning; ``probed`` each result of a connection
    attempt. Times are the caller's monotonic clock."""

    summary_every: float = SUMMARY_EVERY_SECONDS
    away_since: float | None = None
    unchecked: int = 0  # complaints since the last connection attempt
    suspicion: str | None = None  # the first of them
    held_since_said: int = 0
    held_in_outage: int = 0
    last_said: float = 0.0

    @property
    def away(self) -> bool:
        return self.away_since is not None

    def complaint(self, message: str) -> bool:
        """True when Kafka is not known to be away: the complaint waits for the next
        connection attempt, and is written if Kafka answers it. False: it is only counted."""
        if self.away_since is not None:
            self.held_since_said += 1
            self.held_in_outage += 1
            return False
        if self.suspicion is None:
            self.suspicion = message[:QUOTED_COMPLAINT_CHARS]
        self.unchecked += 1
        return True

    def probed(self, now: float, reachable: bool) -> str | None:
        """The line to log after a connection attempt, if any."""
        if self.away_since is None:
            suspicion, unchecked = self.suspicion, self.unchecked
            self.suspicion, self.unchecked = None, 0
            if reachable or suspicion is None:
                return None
            self.away_since = self.last_said = now
            self.held_since_said = self.held_in_outage = unchecked
            return (
                f"Kafka unreachable (no bootstrap server accepts a connection); its clients "
                f"said: {suspicion}. Their messages are held back until Kafka is back, with a "
                f"summary every {self.summary_every:.0f} s"
            )
        if reachable:
            line = (
                f"Kafka reachable again after {now - self.away_since:.0f} s "
                f"({self.held_in_outage} client messages held back)"
            )
            self.away_since = None
            return line
        if now - self.last_said >= self.summary_every:
            line = (
                f"Kafka still unreachable after {now - self.away_since:.0f} s "
                f"({self.held_since_said} client messages held back in the last "
                f"{now - self.last_said:.0f} s)"
            )
            self.last_said, self.held_since_said = now, 0
            return line
        return None


def accepts_a_connection(servers: Sequence[Server]) -> bool:
    for server in servers:
        try:
            with socket.create_connection(server, timeout=PROBE_TIMEOUT_SECONDS):
                return True
        except OSError:
            continue
    return False


class KafkaOutageFilter(logging.Filter):
    """The filter of a log handler that holds each Kafka client complaint until a connection
    attempt tells whether Kafka is away: if Kafka answers, the complaint is written (through
    the handler, a moment late); if not, it is counted, and the outage said once.

    A daemon thread, started at the first complaint (unless ``watch`` is false), makes the
    connection attempts: at each complaint while Kafka answers, every ``probe_every``
    seconds while it is away. ``check`` is one attempt."""

    def __init__(
        self,
        handler: logging.Handler,
        servers: Sequence[Server],
        probe: Probe = accepts_a_connection,
        clock: Callable[[], float] = time.monotonic,
        probe_every: float = PROBE_EVERY_SECONDS,
        watch: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self._sleep = sleep
        self._handler = handler
        self._servers = tuple(servers)
        self._probe = probe
        self._clock = clock
        self._probe_every = probe_every
        self.state = Reachability()
        self._pending: list[logging.LogRecord] = []
        self._lock = threading.Lock()
        self._complained = threading.Event()
        self._watch_started = not watch or not self._servers
        self._log = logging.getLogger(__name__)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, CHECKED, False) or not is_kafka_client_complaint(record):
            return True
        with self._lock:
            if self.state.complaint(_message_of(record)) and len(self._pending) < MAX_PENDING:
                self._pending.append(record)
            if not self._watch_started:
                threading.Thread(target=self._watch, name="kafka-outage-log", daemon=True).start()
                self._watch_started = True
        self._complained.set()
        return False

    def check(self) -> None:
        reachable = self._probe(self._servers)
        if reachable and self._pending and not self.state.away:
            self._sleep(CONFIRM_AFTER_SECONDS)
            reachable = self._probe(self._servers)
        with self._lock:
            line = self.state.probed(self._clock(), reachable)
            pending, self._pending = self._pending, []
        if line is not None:
            self._log.warning(line)
        if reachable:
            for record in pending:
                setattr(record, CHECKED, True)
                self._handler.handle(record)

    def _watch(self) -> None:
        while True:
            if not self.state.away:
                self._complained.wait()
            self._complained.clear()
            self.check()
            if self.state.away:
                self._sleep(self._probe_every)


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):  # arguments that do not fit the template
        return str(record.msg)


def wait_until_kafka_answers(
    servers: Sequence[Server],
    probe: Probe = accepts_a_connection,
    sleep: Callable[[float], None] = time.sleep,
    every: float = PROBE_EVERY_SECONDS,
) -> None:
    """Block until a bootstrap server accepts a connection, saying once that the process
    waits and once that Kafka is there: a component (re)started while Kafka is away waits
    for it quietly, instead of failing its start with a traceback and being restarted in a
    loop."""
    if not servers or probe(servers):
        return
    log = logging.getLogger(__name__)
    listed = ",".join(f"{host}:{port}" for host, port in servers)
    log.warning("Kafka at %s does not accept connections; waiting for it before starting", listed)
    waited = 0.0
    while not probe(servers):
        sleep(every)
        waited += every
    log.warning("Kafka at %s accepts connections after %.0f s; starting", listed, waited)
