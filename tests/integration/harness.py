"""Factories for integration tests: real brokers, real engine processes, real clients."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from engine.kafka import broker
from engine.kafka.security import KafkaSecurity, kafka_python_options
from engine.settings import Settings
from engine.supervisor import REPLICA_PORT_STEP

PROJECT_ROOT = Path(__file__).resolve().parents[2]


LOWEST_TEST_PORT = 10000
_port_picker = random.Random(os.getpid() ^ time.time_ns())


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int, kind: socket.SocketKind = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM, span: int = 0) -> int:
    """A port to listen on later, below the ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the range it also
    uses for outgoing connections, so between the choice and a child process's
    bind any Kafka client on the machine may take it as its local port. Ports
    below that range are only ever taken by listeners. With ``span``, the ports
    ``port .. port + span`` are all free too (a cluster's or replicas' offsets).
    """
    ceiling = ephemeral_port_range()[0] - 1 - span
    for _ in range(1000):
        port = _port_picker.randint(LOWEST_TEST_PORT, ceiling)
        if all(port_is_free(port + offset, kind) for offset in range(span + 1)):
            return port
    raise AssertionError("no free port below the ephemeral range")


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


def local_broker_settings(state_dir: Path) -> Settings:
    return Settings(
        state_dir=state_dir,
        broker_port=free_port(),
        controller_port=free_port(),
        broker_heap="512m",
    )


@dataclass
class EngineProcess:
    """``engine up`` as a user runs it, in its own process group."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def smtp_port(self) -> int:
        return int(self.env["ENGINE_SMTP_PORT"])

    @property
    def processor_metrics_port(self) -> int:
        return int(self.env["ENGINE_PROCESSOR_METRICS_PORT"])

    @property
    def mail_parser_metrics_port(self) -> int:
        return int(self.env["ENGINE_MAIL_PARSER_METRICS_PORT"])

    @property
    def api_port(self) -> int:
        return int(self.env["ENGINE_API_PORT"])

    @property
    def snmp_port(self) -> int:
        return int(self.env["ENGINE_SNMP_PORT"])

    @property
    def snmp_metrics_port(self) -> int:
        return int(self.env["ENGINE_SNMP_METRICS_PORT"])

    def start(self, *args: str) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine", "up", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(
            lambda: (
                self._alive()
                and port_open(self.smtp_port)
                and port_open(self.processor_metrics_port)
                and port_open(self.api_port)
                and self.metric("ticketing_processor_assigned_partitions") > 0
                and self.metric(
                    "ticketing_mail_parser_assigned_partitions", port=self.mail_parser_metrics_port
                )
                > 0
            ),
            120,
            f"engine up to listen for SMTP on {self.smtp_port} and its processor and mail parser "
            "to own partitions",
            on_timeout=self.log,
        )

    def _alive(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"engine up exited with {self.process.returncode}\n{self.log()}")
        return True

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def children(self) -> dict[str, list[int]]:
        """The component processes ``engine up`` runs now, by component name (from /proc)."""
        assert self.process is not None
        found: dict[str, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
            if int(parent.split()[1]) != self.process.pid or b"engine" not in argv:
                continue
            name = argv[argv.index(b"engine") + 1].decode()
            found.setdefault(name, []).append(int(entry.name))
        return found

    def metric(
        self, name: str, labels: dict[str, str] | None = None, port: int | None = None
    ) -> float:
        """A metric of the processor, or of the component serving /metrics on ``port``."""
        url = f"http://127.0.0.1:{port or self.processor_metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:  # the component is (re)starting: nothing counted yet
            return 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == (labels or {}):
                    return float(sample.value)
        return 0.0


class ComponentProcess:
    """One component (``engine processor``, ``engine workers``...) alone, as ``engine up``
    runs it."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.metrics = EngineProcess(env, log_path)  # reads a component's /metrics
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine", command],
                env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Gone without leaving its consumer group, as the stall watchdog's exit is."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ProcessorProcess(ComponentProcess):
    """``engine processor`` alone."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__("processor", env, log_path)

    def wait_assigned(self) -> None:
        wait_until(
            lambda: self.metrics.metric("ticketing_processor_assigned_partitions") > 0,
            120,
            "the processor to own partitions",
            on_timeout=self.log,
        )


def engine_env(
    state_dir: Path, bootstrap: str = "", topic_prefix: str = "", **extra: str
) -> dict[str, str]:
    """An engine process's environment: free ports, its own state, and ``topic_prefix`` (the
    test module's own topics) in front of every topic and consumer group. With
    ``ENGINE_REPLICAS``, every /metrics port has its replicas' ports (+10 each) free too."""
    replicas = int(extra.get("ENGINE_REPLICAS", "1"))

    def metrics_port() -> str:
        return str(free_port(span=REPLICA_PORT_STEP * (replicas - 1)))

    env = {key: value for key, value in os.environ.items() if not key.startswith("ENGINE_")}
    env.update(
        ENGINE_STATE_DIR=str(state_dir),
        ENGINE_SMTP_PORT=str(free_port()),
        ENGINE_SMTP_METRICS_PORT=metrics_port(),
        ENGINE_MAIL_PARSER_METRICS_PORT=metrics_port(),
        ENGINE_PROCESSOR_METRICS_PORT=metrics_port(),
        ENGINE_SNMP_PORT=str(free_udp_port()),
        ENGINE_SNMP_METRICS_PORT=metrics_port(),
        ENGINE_SLA_METRICS_PORT=metrics_port(),
        ENGINE_API_PORT=str(free_port()),
        ENGINE_API_METRICS_PORT=metrics_port(),
        ENGINE_WORKERS_METRICS_PORT=metrics_port(),
        ENGINE_ENTITLEMENTS_METRICS_PORT=metrics_port(),
        ENGINE_NOTIFIER_METRICS_PORT=metrics_port(),
        ENGINE_APP_ID=f"test-{free_port()}",
        ENGINE_KAFKA_ACK_TIMEOUT_SECONDS="3",
        PYTHONUNBUFFERED="1",
    )
    if bootstrap:
        env["ENGINE_BOOTSTRAP_SERVERS"] = bootstrap
    if topic_prefix:
        env["ENGINE_TOPIC_PREFIX"] = topic_prefix
    env.update(extra)
    return env


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    detail = f"\n{on_timeout()}" if on_timeout else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")


# A Spanish outage as a customer writes it: P1, pbx_down, L3 by the shipped rules.
SPANISH_OUTAGE = (
    "La central está caída desde las 9, no entra ni sale ninguna llamada en toda la empresa. "
    "Somos 60 personas sin teléfono."
)


def support_mail(
    subject: str, body: str, message_id: str, sender: str = "cliente@acme.example"
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Cliente <{sender}>"
    message["To"] = "soporte@support.example.com"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(body)
    return message


def outage_mail_routed(engine: EngineProcess, reader: TopicReader) -> dict[str, Any]:
    """Sends ``engine`` a customer's outage mail through SMTP and returns its ticket's
    record as ``reader`` (of the L3 topic) reads it."""
    message = support_mail(
        "Caída total", "La central está caída, no entran llamadas", f"<{uuid.uuid4()}@x.example>"
    )
    code, reply = send_mail(engine.smtp_port, message)
    assert code == 250, reply
    ticket = reply.decode().rsplit(" ", 1)[-1]
    routed: dict[str, Any] = reader.wait_for(lambda key, value: key == ticket)
    return routed


def send_mail(port: int, message: EmailMessage) -> tuple[int, bytes]:
    """Send over real SMTP; returns the DATA reply (code, text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail(str(message["From"]).split("<")[-1].rstrip(">"))
        code, text = client.rcpt("soporte@support.example.com")
        assert code == 250, (code, text)
        return client.data(message.as_bytes(policy=policy.SMTP))  # CRLF, as MTAs send


@dataclass
class TopicReader:
    """Reads a topic from the beginning, remembering what it has seen (not its tombstones)."""

    bootstrap: str
    topic: str
    records: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    _consumer: KafkaConsumer | None = None
    hostile: bool = False  # the topic holds records that are not JSON: pass over them

    def _poll(self) -> None:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                group_id=None,
                **kafka_python_options(self.security),
            )
            partitions = self._consumer.partitions_for_topic(self.topic)
            if not partitions:  # its metadata not known yet: assigned nothing, it read nothing
                self._consumer.close()
                self._consumer = None
                time.sleep(0.2)
                return
            assigned = [TopicPartition(self.topic, p) for p in partitions]
            self._consumer.assign(assigned)
            self._consumer.seek_to_beginning(*assigned)
        for batch in self._consumer.poll(timeout_ms=500).values():
            for record in batch:
                if record.value is None:
                    continue  # a tombstone: nothing to match
                key = record.key.decode() if record.key else None
                try:
                    self.records.append((key, json.loads(record.value)))
                except ValueError:
                    if not self.hostile:
                        raise

    def wait_for(
        self, predicate: Callable[[str | None, dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self._poll()
            return next((value for key, value in self.records if predicate(key, value)), None)

        return wait_until(found, timeout, f"a matching record on {self.topic}")  # type: ignore[no-any-return]

    def matching(
        self, predicate: Callable[[str | None, dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        self._poll()
        return [value for key, value in self.records if predicate(key, value)]

    def keyed(
        self, predicate: Callable[[str | None, dict[str, Any]], bool]
    ) -> list[tuple[str | None, dict[str, Any]]]:
        self._poll()
        return [(key, value) for key, value in self.records if predicate(key, value)]

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def started_broker(settings: Settings) -> Iterator[str]:
    broker.start(settings)
    try:
        yield settings.kafka_bootstrap
    finally:
        broker.stop(settings)


def normal(raw: bytes) -> bytes:
    """Mail as its lines, whatever their ends: SMTP carries lines, and the client ends the
    data with CRLF."""
    return raw.replace(b"\r\n", b"\n").rstrip(b"\n")


def parsed_mail(
    events: TopicReader, letters: TopicReader, ticket: str, sender: str, raw: bytes
) -> dict[str, Any] | None:
    """What the mail parser made of a mail from ``sender`` accepted for ``ticket``: its
    ``email.received`` event, or the dead letter that holds the mail whole; None yet."""
    event = events.matching(
        lambda key, value: key == ticket and value["data"].get("mail_from") == sender
    )
    if event:
        return event[0]
    letter = letters.matching(
        lambda key, value: (
            value["data"]["origin"] == "smtp"
            and normal(base64.b64decode(value["data"]["payload_base64"])) == normal(raw)
        )
    )
    return letter[0] if letter else None
