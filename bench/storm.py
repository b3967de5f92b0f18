"""A trap storm against the whole engine, and what it does to the customers' mail.

Starts its own broker (a temporary state dir, free ports) and ``engine up
--bootstrap-servers`` on it, every component as ``engine up`` runs it, with the defaults
(only the ports, the state dir and the broker are set). Then, in one run:

1. without a storm: N P1 outage mails through SMTP, one every 250 ms;
2. during a storm: T SNMPv2c linkDown traps of A interfaces of one device (ifIndex 1..A,
   round robin) at R traps/s, from a separate process that encodes them all before the
   clock starts and sends them in bursts every 5 ms; the same N mails are sent meanwhile.

It prints the traps sent; accepted by the engine (the SNMP receiver's /metrics, by
outcome); lost in the kernel (the drops of the receiver's socket in /proc/net/udp, and
the host's ``Udp: RcvbufErrors``) and in the engine (sent - accepted - kernel drops);
the time from the last trap sent until the alarm tickets' ``alarm.occurrences``, read from
the compacted ``tickets.state.v1``, add up to the traps accepted; and p50/p99 of
mail-to-routed with and without the storm. Mail-to-routed is from the SMTP server's 250
(the client's wall clock when ``DATA`` returned) to the Kafka CreateTime of the ticket's
record on ``tickets.routed.<tier>.v1`` (set by the processor's producer), both on this
machine's clock; percentiles are nearest-rank (of 20, p99 is the slowest). The driver's
own consumer's receipt time is printed too, as a check. Targets (issue 14): zero traps
lost at 5,000/s, mail p99 during the storm within 2x of without it and under 2 s, the
storm on the tickets within 10 s of the last trap.

    python -m bench.storm [--traps 20000] [--rate 5000] [--alarms 48] [--mails 20]
    python -m bench.storm --quick   # a smoke run: 2,000 traps at 2,000/s, 5 mails
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from types import FrameType
from typing import Any

from engine.contract.topics import TICKET_STATE, TIER_TOPICS
from engine.development import DEVELOPMENT_COMMUNITY
from engine.ingest.snmp.udp_stats import read_rcvbuf_errors, read_socket_drops
from engine.kafka import broker
from engine.kafka.security import kafka_python_options, security_for
from engine.settings import Settings
from tests.integration.harness import free_port, free_udp_port, port_open, wait_until
from tests.integration.snmp_peers import encoded_link_trap, scrape

# engine up's development community: the run leaves ENGINE_SNMP_COMMUNITIES unset.
COMMUNITY = DEVELOPMENT_COMMUNITY
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
COLD_START = "1.3.6.1.6.3.1.1.5.1"  # the probe: another alarm family than the storm's
LINK_ALARM = "|IF-MIB::link|"  # in the alarm key of every linkDown ticket (alarm_identity)
SUBJECT = "Urgente: la central está caída ({token})"  # the shipped rules: P1, pbx_down
BODY = "no entran ni salen llamadas desde las 9, todos los agentes parados\n"
TOKEN = re.compile(r"storm-[0-9a-f]{6}-[a-z]\d+")
MAIL_EVERY_SECONDS = 0.25
BURST_EVERY_SECONDS = 0.005
READY_SECONDS = 240.0


# -- the storm's sender (its own process) ----------------------------------------------


def encoded_traps(count: int, alarms: int, first_request_id: int) -> list[bytes]:
    """``count`` distinct v2c linkDown traps from one device, ifIndex 1..alarms in turn."""
    return [
        encoded_link_trap(COMMUNITY, n % alarms + 1, first_request_id + n, uptime=n)
        for n in range(count)
    ]


def send_paced(port: int, datagrams: list[bytes], rate: float) -> dict[str, float]:
    """Send at ``rate`` per second, a burst every 5 ms; the count and wall-clock times."""
    burst = max(1, round(rate * BURST_EVERY_SECONDS))
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        first_wall, started = time.time(), time.perf_counter()
        for index in range(0, len(datagrams), burst):
            for datagram in datagrams[index : index + burst]:
                sock.send(datagram)
                sent += 1
            pause = started + (index + burst) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        last_wall, took = time.time(), time.perf_counter() - started
    return {"sent": sent, "first_wall": first_wall, "last_wall": last_wall, "seconds": took}


def run_sender(port: int, traps: int, rate: float, alarms: int) -> None:
    """Encode, say ready, wait for a line on stdin, send; the result as a JSON line."""
    datagrams = encoded_traps(traps, alarms, first_request_id=1_000_000)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    print(json.dumps(send_paced(port, datagrams, rate)), flush=True)


# -- the engine, as `engine up` runs it ------------------------------------------------


@dataclass(frozen=True)
class Ports:
    smtp: int = field(default_factory=free_port)
    snmp: int = field(default_factory=free_udp_port)
    snmp_metrics: int = field(default_factory=free_port)
    processor_metrics: int = field(default_factory=free_port)
    mail_parser_metrics: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        """Every listening port of `engine up`'s components, free ones."""
        return {
            "ENGINE_SMTP_PORT": str(self.smtp),
            "ENGINE_SNMP_PORT": str(self.snmp),
            "ENGINE_SNMP_METRICS_PORT": str(self.snmp_metrics),
            "ENGINE_PROCESSOR_METRICS_PORT": str(self.processor_metrics),
            "ENGINE_MAIL_PARSER_METRICS_PORT": str(self.mail_parser_metrics),
            "ENGINE_SMTP_METRICS_PORT": str(free_port()),
            "ENGINE_SLA_METRICS_PORT": str(free_port()),
            "ENGINE_ENTITLEMENTS_METRICS_PORT": str(free_port()),
            "ENGINE_API_PORT": str(free_port()),
            "ENGINE_API_METRICS_PORT": str(free_port()),
            "ENGINE_NOTIFIER_METRICS_PORT": str(free_port()),
        }


def start_engine(state_dir: Path, bootstrap: str, ports: Ports) -> subprocess.Popen[bytes]:
    """``engine up`` on the run's broker, in its own process group, logging to a file.
    The caller's ENGINE_* settings are left out (but a topic prefix, which this process's
    topic names carry too)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    if "ENGINE_TOPIC_PREFIX" in os.environ:
        env["ENGINE_TOPIC_PREFIX"] = os.environ["ENGINE_TOPIC_PREFIX"]
    env.update(ports.env(), ENGINE_STATE_DIR=str(state_dir), PYTHONUNBUFFERED="1")
    with (state_dir / "engine-up.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "engine", "up", "--bootstrap-servers", bootstrap],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop_group(process: subprocess.Popen[Any], grace: float) -> None:
    """Interrupt ``process`` (the leader of its own group), then kill what is left of it."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):  # nothing left of the group
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def metric(port: int, name: str) -> float:
    return scrape(port).get((name, frozenset()), 0.0)


def snmp_outcomes(metrics_port: int) -> Counter[tuple[str, str]]:
    """The SNMP receiver's ``ticketing_events_ingested_total`` by (outcome, reason)."""
    counted: Counter[tuple[str, str]] = Counter()
    for (name, labels), value in scrape(metrics_port).items():
        found = dict(labels)
        if name == "ticketing_events_ingested_total" and found.get("source") == "snmp":
            counted[(found["outcome"], found["reason"])] += int(value)
    return counted


def wait_ready(engine: subprocess.Popen[bytes], ports: Ports, log: Callable[[], str]) -> None:
    """SMTP answers, the SNMP receiver serves /metrics, processor and mail parser own
    partitions."""

    def ready() -> bool:
        if engine.poll() is not None:
            raise RuntimeError(f"engine up exited with {engine.returncode}\n{log()}")
        return (
            port_open(ports.smtp)
            and port_open(ports.snmp_metrics)
            and metric(ports.processor_metrics, "ticketing_processor_assigned_partitions") > 0
            and metric(ports.mail_parser_metrics, "ticketing_mail_parser_assigned_partitions") > 0
        )

    wait_until(ready, READY_SECONDS, "engine up's components", on_timeout=log)


# -- what reaches the routed and state topics --------------------------------------------


@dataclass(frozen=True)
class Routed:
    created: float  # the record's CreateTime, seconds since the epoch
    received: float  # when this process's consumer had it
    priority: str


@dataclass
class Alarm:
    created: float
    value: bytes
    occurrences: int | None = None  # parsed lazily; None: not parsed yet


class Follower(threading.Thread):
    """Reads the tier topics and ``tickets.state.v1`` from the beginning: the first routed
    record of each mail (by its token), and the latest state of every ticket."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(name="follower", daemon=True)
        self.bootstrap = bootstrap
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.routed: dict[str, Routed] = {}
        self.states: dict[bytes, Alarm] = {}
        self.create_time_only = True

    def run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **kafka_python_options(security_for(self.bootstrap)),
        )
        try:
            assigned = [
                TopicPartition(topic, partition)
                for topic in (*TIER_TOPICS.values(), TICKET_STATE)
                for partition in consumer.partitions_for_topic(topic) or ()
            ]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            while not self.stopping.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self._take(record)
        finally:
            consumer.close()

    def _take(self, record: Any) -> None:
        created = record.timestamp / 1000
        self.create_time_only &= record.timestamp_type == 0
        with self.lock:
            if record.topic == TICKET_STATE:
                self.states[record.key] = Alarm(created, record.value)
                return
        ticket = json.loads(record.value)["data"]["ticket"]
        found = TOKEN.search(ticket["subject"])
        with self.lock:
            if found and found.group() not in self.routed:
                self.routed[found.group()] = Routed(created, time.time(), ticket["priority"])

    def routed_mail(self, token: str) -> Routed | None:
        with self.lock:
            return self.routed.get(token)

    def alarm_totals(self) -> tuple[int, int, float]:
        """(linkDown alarm tickets, their occurrences summed, latest CreateTime among
        their current states)."""
        with self.lock:
            states = list(self.states.values())
        tickets, occurrences, latest = 0, 0, 0.0
        for state in states:
            if state.occurrences is None:
                alarm = json.loads(state.value)["data"]["ticket"].get("alarm")
                linked = alarm is not None and LINK_ALARM in alarm["key"]
                state.occurrences = alarm["occurrences"] if linked else 0
            if state.occurrences:
                tickets += 1
                occurrences += state.occurrences
                latest = max(latest, state.created)
        return tickets, occurrences, latest


# -- the mails -------------------------------------------------------------------------


@dataclass(frozen=True)
class MailSent:
    token: str
    code: int
    accepted_at: float  # wall clock when the 250 arrived
    smtp_seconds: float  # DATA sent to 250


def outage_mail(token: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Cliente <{token}@acme.example>"
    message["To"] = "soporte@support.example.com"
    message["Subject"] = SUBJECT.format(token=token)
    message["Message-ID"] = f"<{token}@acme.example>"
    message.set_content(BODY)
    return message.as_bytes(policy=SMTP_POLICY)


def send_mail(port: int, token: str) -> MailSent:
    """One mail over its own SMTP connection (each from its own sender, as customers
    are: the per-sender limit stays at its default)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo()
        client.mail(f"{token}@acme.example")
        client.rcpt("soporte@support.example.com")
        started = time.perf_counter()
        code, _ = client.data(outage_mail(token))
        return MailSent(token, code, time.time(), time.perf_counter() - started)


def send_mails(port: int, tokens: list[str]) -> list[MailSent]:
    """One mail every 250 ms (or at once, when the previous one took longer)."""
    started = time.perf_counter()
    sent = []
    for n, token in enumerate(tokens):
        pause = started + n * MAIL_EVERY_SECONDS - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent.append(send_mail(port, token))
    return sent


@dataclass(frozen=True)
class MailPhase:
    sent: list[MailSent]
    routed: dict[str, Routed]

    @property
    def latencies(self) -> list[float]:
        return [self.routed[m.token].created - m.accepted_at for m in self.accepted_routed]

    @property
    def receipt_latencies(self) -> list[float]:
        return [self.routed[m.token].received - m.accepted_at for m in self.accepted_routed]

    @property
    def accepted_routed(self) -> list[MailSent]:
        return [m for m in self.sent if m.code == 250 and m.token in self.routed]

    @property
    def p1(self) -> int:
        return sum(self.routed[m.token].priority == "P1" for m in self.accepted_routed)


def routed_mails(follower: Follower, sent: list[MailSent], timeout: float) -> MailPhase:
    """Wait until every accepted mail is routed, or ``timeout``."""
    accepted = [m.token for m in sent if m.code == 250]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(follower.routed_mail(token) for token in accepted):
            break
        time.sleep(0.25)
    found = {t: r for t in accepted if (r := follower.routed_mail(t)) is not None}
    return MailPhase(sent, found)


# -- the storm -------------------------------------------------------------------------


@dataclass(frozen=True)
class Receiver:
    """What the SNMP receiver and the kernel had counted at one moment."""

    outcomes: Counter[tuple[str, str]]
    socket_drops: int
    rcvbuf_errors: int

    @classmethod
    def read(cls, ports: Ports) -> Receiver:
        return cls(
            snmp_outcomes(ports.snmp_metrics),
            read_socket_drops(ports.snmp) or 0,
            read_rcvbuf_errors() or 0,
        )

    def since(self, before: Receiver) -> Receiver:
        outcomes = Counter(self.outcomes)
        outcomes.subtract(before.outcomes)
        return Receiver(
            +outcomes,
            self.socket_drops - before.socket_drops,
            self.rcvbuf_errors - before.rcvbuf_errors,
        )

    @property
    def accepted(self) -> int:
        return sum(n for (outcome, _), n in self.outcomes.items() if outcome == "accepted")

    @property
    def accounted(self) -> int:
        return sum(self.outcomes.values()) + self.socket_drops


def start_sender(port: int, traps: int, rate: int, alarms: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.storm", "sender", "--snmp-port", str(port),
               "--traps", str(traps), "--rate", str(rate), "--alarms", str(alarms)]  # fmt: skip
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )


def sender_line(sender: subprocess.Popen[str]) -> dict[str, Any]:
    assert sender.stdout is not None
    line = sender.stdout.readline()
    if not line:
        raise RuntimeError(f"the trap sender exited with {sender.wait()}")
    return json.loads(line)  # type: ignore[no-any-return]


def settled_receiver(ports: Ports, before: Receiver, sent: int, timeout: float) -> Receiver:
    """The receiver's counts once every trap sent is accounted for (accepted, refused,
    spooled or dropped by the kernel), or they stopped moving for 5 s."""
    deadline = time.monotonic() + timeout
    last = Receiver.read(ports).since(before)
    changed = time.monotonic()
    while last.accounted < sent and time.monotonic() < deadline:
        time.sleep(0.5)
        now = Receiver.read(ports).since(before)
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > 5:
            break
    return last


def reflected(follower: Follower, target: int, timeout: float) -> tuple[int, int, float | None]:
    """(alarm tickets, occurrences summed, CreateTime of the state that brought the sum to
    ``target``, or None if it did not within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        tickets, occurrences, latest = follower.alarm_totals()
        if occurrences >= target:
            return tickets, occurrences, latest
        if time.monotonic() > deadline:
            return tickets, occurrences, None
        time.sleep(0.25)


@dataclass(frozen=True)
class Storm:
    sender: dict[str, Any]
    receiver: Receiver
    buffer_bytes: int
    tickets: int
    occurrences: int
    reflected_at: float | None
    mails: MailPhase


def storm_phase(
    ports: Ports, follower: Follower, args: argparse.Namespace, tokens: list[str]
) -> Storm:
    sender = start_sender(ports.snmp, args.traps, args.rate, args.alarms)
    try:
        sender_line(sender)  # encoded: ready
        before = Receiver.read(ports)
        assert sender.stdin is not None
        sender.stdin.write("go\n")
        sender.stdin.flush()
        mails = send_mails(ports.smtp, tokens)
        sent = sender_line(sender)
    finally:
        stop_group(sender, 5)
    receiver = settled_receiver(ports, before, int(sent["sent"]), args.wait)
    buffer_bytes = int(metric(ports.snmp_metrics, "ticketing_snmp_receive_buffer_bytes"))
    phase = routed_mails(follower, mails, args.wait)
    tickets, occurrences, at = reflected(follower, receiver.accepted, args.wait)
    return Storm(sent, receiver, buffer_bytes, tickets, occurrences, at, phase)


# -- the run ---------------------------------------------------------------------------


def probe(ports: Ports, follower: Follower, run: str) -> None:
    """One mail routed end to end, and one trap (coldStart: not a link alarm) on Kafka."""
    token = f"storm-{run}-p0"
    sent = send_mail(ports.smtp, token)
    if sent.code != 250 or not routed_mails(follower, [sent], READY_SECONDS).routed:
        raise RuntimeError(f"the probe mail was not routed (SMTP {sent.code})")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(probe_trap(), ("127.0.0.1", ports.snmp))

    def trap_stored() -> bool:
        return Receiver.read(ports).accepted >= 1

    wait_until(trap_stored, 60, "the probe trap on Kafka")


def probe_trap() -> bytes:
    from pyasn1.codec.ber import encoder
    from pysnmp.proto import api

    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = v2c.SNMPv2TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiTrapPDU.set_varbinds(
        pdu, [(SYS_UPTIME, v2c.TimeTicks(1)), (SNMP_TRAP_OID, v2c.ObjectIdentifier(COLD_START))]
    )
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, COMMUNITY)
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def engine_log_tail(state_dir: Path) -> str:
    """The end of ``engine up``'s log, for a message when something does not come up."""
    path = state_dir / "engine-up.log"
    return path.read_text(errors="replace")[-6000:] if path.exists() else ""


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def shown(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def restarts(log: str) -> list[str]:
    return [line for line in log.splitlines() if " exited with " in line]


def report(args: argparse.Namespace, calm: MailPhase, storm: Storm, loads: list[str]) -> None:
    sent, got = int(storm.sender["sent"]), storm.receiver
    kernel = got.socket_drops
    engine_lost = sent - got.accepted - kernel
    refused = {f"{o}/{r}": n for (o, r), n in sorted(got.outcomes.items()) if o != "accepted"}
    print(f"storm: {args.traps:,} v2c linkDown traps of {args.alarms} alarms at "
          f"{args.rate:,}/s; {args.mails} P1 mails, one every 250 ms")  # fmt: skip
    print(f"load average (1/5/15 min): at start {loads[0]}, at end {loads[1]}")
    print(f"SNMP socket receive buffer: {storm.buffer_bytes // 1024} KiB")
    print(f"traps sent                   : {sent:,} in {storm.sender['seconds']:.2f} s "
          f"({sent / storm.sender['seconds']:,.0f}/s)")  # fmt: skip
    print(f"traps accepted by the engine : {got.accepted:,}")
    print(f"  other outcomes             : {refused or 'none'}")
    print(f"traps lost in the kernel     : {kernel:,} (socket drops; host RcvbufErrors "
          f"+{got.rcvbuf_errors:,})")  # fmt: skip
    print(f"traps lost in the engine     : {engine_lost:,} (sent - accepted - kernel drops)")
    lost = sent - got.accepted
    print(f"traps lost, total            : {lost:,}   target 0: {verdict(lost == 0)}")
    print(f"alarm tickets                : {storm.tickets} (of {args.alarms} alarms), "
          f"occurrences summed {storm.occurrences:,}")  # fmt: skip
    if storm.reflected_at is None:
        print(f"storm reflected on tickets   : not within {args.wait:g} s (target 10 s: MISSED)")
    else:
        after = storm.reflected_at - storm.sender["last_wall"]
        print(f"storm reflected on tickets   : {shown(after)} after the last trap   "
              f"target <= 10 s: {verdict(after <= 10)}")  # fmt: skip
    report_mails(calm, storm.mails)


def quantiles(values: list[float]) -> str:
    return f"p50 {shown(percentile(values, 0.5))}, p99 {shown(percentile(values, 0.99))}"


def report_mails(calm: MailPhase, storm: MailPhase) -> None:
    print("mail-to-routed (the 250 to the routed record's CreateTime; nearest rank):")
    for name, phase in (("without storm", calm), ("during storm ", storm)):
        accepted = sum(m.code == 250 for m in phase.sent)
        print(f"  {name}: {quantiles(phase.latencies)}   (routed {len(phase.routed)} of "
              f"{accepted} accepted, {len(phase.sent)} sent; {phase.p1} as P1)")  # fmt: skip
        print(f"    by this consumer's receipt: {quantiles(phase.receipt_latencies)}; "
              f"SMTP DATA to 250: {quantiles([m.smtp_seconds for m in phase.sent])}")  # fmt: skip
    calm_p50, calm_p99 = (percentile(calm.latencies, q) for q in (0.5, 0.99))
    storm_p50, storm_p99 = (percentile(storm.latencies, q) for q in (0.5, 0.99))
    met = storm_p99 <= 2 * calm_p99 and storm_p99 < 2 and len(storm.routed) == len(storm.sent)
    print(f"  ratio during/without: p50 {storm_p50 / calm_p50:.1f}x, p99 "
          f"{storm_p99 / calm_p99:.1f}x   target p99 <= 2x and < 2 s: {verdict(met)}")  # fmt: skip


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(args: argparse.Namespace) -> None:
    loads = [load_average()]
    run_id = os.urandom(3).hex()
    with tempfile.TemporaryDirectory(prefix="bench-storm-", ignore_cleanup_errors=True) as tmp:
        state_dir = Path(tmp)
        settings = Settings(
            state_dir=state_dir, broker_port=free_port(), controller_port=free_port()
        )
        ports = Ports()
        engine: subprocess.Popen[bytes] | None = None
        follower = Follower(settings.kafka_bootstrap)

        def log() -> str:
            return engine_log_tail(state_dir)

        try:
            broker.start(settings)
            engine = start_engine(state_dir, settings.kafka_bootstrap, ports)
            wait_ready(engine, ports, log)
            follower.start()
            probe(ports, follower, run_id)
            print(f"engine up ready; load average {load_average()}", flush=True)
            tokens = [f"storm-{run_id}-b{n}" for n in range(args.mails)]
            calm = routed_mails(follower, send_mails(ports.smtp, tokens), args.wait)
            print("phase 1 (no storm) done; the storm starts", flush=True)
            tokens = [f"storm-{run_id}-s{n}" for n in range(args.mails)]
            storm = storm_phase(ports, follower, args, tokens)
            loads.append(load_average())
            if not follower.create_time_only:
                print("warning: some records carry LogAppendTime, not CreateTime")
            for line in restarts(log()):
                print(f"note: {line}")
        finally:
            follower.stopping.set()
            if engine is not None:
                stop_group(engine, 60)
            broker.stop(settings)
            if follower.is_alive():
                follower.join(10)
    report(args, calm, storm, loads)


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the broker and `engine up` are stopped."""

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the cleanup finish
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="run", choices=("run", "sender"))
    parser.add_argument("--traps", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=5000, help="traps per second")
    parser.add_argument("--alarms", type=int, default=48, help="interfaces (ifIndex 1..N)")
    parser.add_argument("--mails", type=int, default=20, help="P1 mails in each phase")
    parser.add_argument("--wait", type=float, default=300, help="longest wait for a result (s)")
    parser.add_argument("--quick", action="store_true", help="2,000 traps at 2,000/s, 5 mails")
    parser.add_argument("--snmp-port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sender":
        run_sender(args.snmp_port, args.traps, args.rate, args.alarms)
        return
    if args.quick:
        args.traps, args.rate, args.mails = 2000, 2000, 5
    stop_on_sigterm()
    run(args)


if __name__ == "__main__":
    main()
