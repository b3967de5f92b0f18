"""A fault campaign against the engine on a three-node cluster, two of every component.

As Kafka and Jepsen test themselves: a load generator that records every answer its
senders get, a nemesis that injects faults while the load runs, and a checker that reads
every topic back and counts what was lost and what was done twice.

- **Engine**: ``engine up --nodes 3 --replicas 2`` with its own state directory and free
  ports: a three-node KRaft cluster, two processes of each replicated component, the
  tier workers (the example agents), the notifier (to a recording SMTP relay on
  loopback), SLA time running ``--sla-scale`` times fast so alerts and escalations fire
  during the run.
- **Load**: ``--inputs`` inputs at ``--rate`` per second, in a fixed mix: new tickets by
  SMTP, customers' replies to tickets opened earlier, SNMPv2c INFORMs (each its own alarm)
  and chat messages of new conversations by HTTP. Each is recorded with its answer: 250,
  the INFORM's response, 202 (acknowledged), or 4xx/5xx, no answer within 10 s, a dropped
  connection (refused: its sender would retry).
- **Nemesis**, one fault of each kind, spread over the load after 10 s of warm-up:
  SIGKILL the broker that leads the most partitions and start it again 5 s later; SIGKILL
  a triage processor; SIGSTOP an SLA worker for 20 s, then SIGCONT; SIGKILL the SMTP
  ingestor holding a connection in the middle of its DATA; SIGKILL a mail parser.
  ``engine up`` restarts what was killed.
- **Checker** (``bench/chaos_check.py``): every acknowledged input has exactly one event
  (mails by Message-ID and chats by the 202's event id on ``tickets.events.v1``, INFORMs by
  request id on ``snmp.traps.v1``, where every notification is kept as received) and its
  ticket is on a tier topic; tier-topic records are counted by ``event_id``, SLA alerts
  (with their kind and repeat) and escalation steps by ``dedup_key``, mails at the relay
  by Message-ID. After each fault, the slowest acknowledgement-to-routed of the new
  tickets acknowledged until the next fault (30 s at most) is the fault's pause (target:
  10 s).

    python -m bench.chaos                # 9,000 inputs at 50/s, about 3 minutes of load
    python -m bench.chaos --quick        # 1,500 inputs at 25/s, about 60 s (make test)

Exits 1 when an acknowledged input was lost or an alert, escalation or mail was doubled.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import smtplib
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bench.chaos_check import Fault, Kind, Outcome, Record, Report, Sent, check, render
from engine.contract.topics import (
    ESCALATIONS,
    SLA_ALERTS,
    SNMP_TRAPS,
    TICKET_EVENTS,
    TIER_TOPICS,
)
from engine.development import DEVELOPMENT_COMMUNITY
from engine.errors import EngineError
from engine.kafka import broker
from engine.kafka.admin import partition_leaders
from engine.kafka.security import kafka_python_options, security_for
from engine.passwords import hash_password
from engine.settings import NODE_PORT_STEP, Settings
from engine.supervisor import REPLICA_PORT_STEP
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    engine_env,
    free_port,
    wait_until,
)
from tests.integration.mail_relay import RecordingRelay, serving_relay
from tests.integration.snmp_peers import encoded_link_trap

NODES = 3
REPLICAS = 2
COMMUNITY = DEVELOPMENT_COMMUNITY
CHAT_TOKEN = "chaos.chaos-load-secret"
ANSWER_TIMEOUT_SECONDS = 10.0
SLA_STOP_SECONDS = 20.0
BROKER_DOWN_SECONDS = 5.0
RECOVERY_WINDOW_SECONDS = 30.0
WARM_UP_SECONDS = 10.0
PAUSE_TARGET_SECONDS = 10.0
# Out of every 20 inputs: 8 new mails, 3 replies, 4 INFORMs, 5 chats.
MIX: tuple[Kind, ...] = (
    (Kind.MAIL, Kind.CHAT, Kind.INFORM, Kind.MAIL, Kind.REPLY) * 2
    + (Kind.MAIL, Kind.CHAT, Kind.MAIL, Kind.INFORM, Kind.CHAT)
    + (Kind.MAIL, Kind.REPLY, Kind.INFORM, Kind.CHAT, Kind.MAIL)
)
# What customers write (the shipped rules: a P1 outage, a P2, a P3 and a P4 question).
TEXTS = (
    ("Urgente: centralita caída", "No entran ni salen llamadas en toda la empresa desde las 9."),
    ("Calls dropping", "Since this morning about half of our outbound calls drop after 30 s."),
    ("Eco en algunas llamadas", "Algunos agentes oyen eco en las llamadas salientes."),
    ("Question about voicemail", "How do we change the voicemail greeting of a user?"),
)
FAULTS = ("broker", "processor", "sla", "smtp", "mail-parser")
# The example directory's 24x7 customer: its SLA clocks run at any hour of the run.
CUSTOMER_DOMAIN = "globex.example"


# -- the engine ------------------------------------------------------------------------


@dataclass
class Engine:
    process: EngineProcess
    settings: Settings
    relay: RecordingRelay
    snmp_port: int


@contextlib.contextmanager
def running_engine(state: Path, sla_scale: float, log_level: str = "WARN") -> Iterator[Engine]:
    """``engine up --nodes 3 --replicas 2`` with the notifier, the workers and fast SLA time,
    its components logging at ``log_level`` to ``up.log``."""
    broker_port = free_port(span=NODE_PORT_STEP * (NODES - 1) + 1)
    tokens = state / "tokens"
    state.mkdir(parents=True, exist_ok=True)
    tokens.write_text(f"chaos:chat:write:{hash_password(CHAT_TOKEN, 1000)}\n")
    with serving_relay() as (relay, relay_port):
        env = engine_env(
            state / "engine",
            ENGINE_REPLICAS=str(REPLICAS),
            ENGINE_BROKER_PORT=str(broker_port),
            ENGINE_CONTROLLER_PORT=str(broker_port + 1),
            ENGINE_API_TOKENS_FILE=str(tokens),
            ENGINE_CUSTOMERS_FILE=str(PROJECT_ROOT / "deploy" / "customers.example.yaml"),
            ENGINE_AGENTS_FILE=str(PROJECT_ROOT / "deploy" / "agents.example.yaml"),
            ENGINE_NOTIFY_RELAY=f"127.0.0.1:{relay_port}",
            ENGINE_SLA_TIME_SCALE=str(sla_scale),
            ENGINE_SLA_TIME_ORIGIN=datetime.now(UTC).isoformat(),
            ENGINE_SLA_TICK_SECONDS="0.5",
            # One load generator on one address: the per-address limits would refuse it.
            ENGINE_SMTP_SENDER_LIMIT_PER_MINUTE="1000000",
            ENGINE_API_RATE_LIMIT_PER_MINUTE="1000000",
            ENGINE_API_RATE_LIMIT_BURST="10000",
            ENGINE_API_CHAT_LIMIT_PER_ADDRESS="1000000",
            ENGINE_KAFKA_ACK_TIMEOUT_SECONDS="5",
            ENGINE_LOG_LEVEL=log_level,
        )
        settings = Settings(
            state_dir=state / "engine",
            broker_port=broker_port,
            controller_port=broker_port + 1,
            broker_nodes=NODES,
        )
        process = EngineProcess(env, state / "up.log")
        try:
            process.start("--nodes", str(NODES))
            settle_groups(process)
            yield Engine(process, settings, relay, int(env["ENGINE_SNMP_PORT"]))
        finally:
            process.stop()
            broker.stop(settings)


def settle_groups(process: EngineProcess) -> None:
    """Wait until both processors and both mail parsers own partitions, so the load does
    not start in the rebalances of the replicas joining their groups."""
    for metric, port in (
        ("ticketing_processor_assigned_partitions", process.processor_metrics_port),
        ("ticketing_mail_parser_assigned_partitions", process.mail_parser_metrics_port),
    ):
        ports = [port + REPLICA_PORT_STEP * replica for replica in range(REPLICAS)]
        wait_until(
            lambda: all(process.metric(metric, port=at) > 0 for at in ports),  # noqa: B023
            180,
            f"{metric} > 0 in every replica",
            process.log,
        )


# -- the load --------------------------------------------------------------------------


@dataclass
class Load:
    """The inputs sent so far and what each sender was told."""

    engine: Engine
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    chooser: random.Random = field(default_factory=lambda: random.Random(20261206))
    next_request_id: int = 1_000_000

    def record(self, sent: Sent) -> None:
        with self.lock:
            self.sent.append(sent)

    def open_mail(self) -> Sent | None:
        """A mail acknowledged earlier, for a customer's reply."""
        with self.lock:
            acked = [s for s in self.sent if s.kind is Kind.MAIL and s.outcome is Outcome.ACKED]
            return self.chooser.choice(acked) if acked else None

    def send(self, kind: Kind, number: int) -> None:
        if kind is Kind.REPLY:
            original = self.open_mail()
            self.record(self.mail(number, original) if original else self.mail(number, None))
        elif kind is Kind.MAIL:
            self.record(self.mail(number, None))
        elif kind is Kind.INFORM:
            self.record(self.inform(number))
        else:
            self.record(self.chat(number))

    def mail(self, number: int, original: Sent | None) -> Sent:
        subject, body = TEXTS[number % len(TEXTS)]
        message = EmailMessage()
        message["From"] = f"Cliente {number} <user{number % 50}@{CUSTOMER_DOMAIN}>"
        message["To"] = "soporte@support.example.com"
        message_id = f"<chaos-{number}-{uuid.uuid4().hex[:8]}@acme.example>"
        message["Message-ID"] = message_id
        if original is not None:
            message["Subject"] = f"Re: {subject}"
            message["In-Reply-To"] = original.identity
            message["References"] = original.identity
            message.set_content(f"Any news? Still the same here.\n\n> {body}\n")
        else:
            message["Subject"] = f"{subject} ({number})"
            message.set_content(f"{body}\nRef {number}.\n")
        started = time.time()
        code, answer = smtp_deliver(self.engine.process.smtp_port, message)
        ticket = answer.rsplit(" ", 1)[-1] if code == 250 else None
        return Sent(
            kind=Kind.REPLY if original is not None else Kind.MAIL,
            identity=message_id,
            sent_at=started,
            answered_at=time.time(),
            outcome=Outcome.ACKED if code == 250 else Outcome.REFUSED,
            ticket_id=ticket,
            answer=f"{code} {answer}",
        )

    def inform(self, number: int) -> Sent:
        with self.lock:
            self.next_request_id += 1
            request_id = self.next_request_id
        datagram = encoded_link_trap(COMMUNITY, 1000 + number, request_id, inform=True)
        started = time.time()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("127.0.0.1", self.engine.snmp_port))
            sock.settimeout(ANSWER_TIMEOUT_SECONDS)
            sock.send(datagram)
            try:
                sock.recv(65535)
                outcome, answer = Outcome.ACKED, "response"
            except OSError as error:
                outcome, answer = Outcome.REFUSED, f"no response ({error})"
        return Sent(Kind.INFORM, str(request_id), started, time.time(), outcome, None, answer)

    def chat(self, number: int) -> Sent:
        conversation = uuid.uuid4().hex
        subject, body = TEXTS[number % len(TEXTS)]
        payload = {
            "message_id": "m1",
            "sender": f"user{number % 50}@{CUSTOMER_DOMAIN}",
            "text": f"{subject}. {body}",
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.engine.process.api_port}/chat/conversations/"
            f"{conversation}/messages",
            data=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {CHAT_TOKEN}", "Content-Type": "application/json"},
        )
        started = time.time()
        try:
            with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_SECONDS) as response:
                status, body_text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                status, body_text = error.code, error.read().decode(errors="replace")
        except OSError as error:
            status, body_text = 0, str(error)
        if status == 202:
            answer = json.loads(body_text)
            return Sent(
                Kind.CHAT, answer["event_id"], started, time.time(), Outcome.ACKED,
                answer["ticket_id"], "202",
            )  # fmt: skip
        return Sent(
            Kind.CHAT, f"unanswered-{conversation}", started, time.time(), Outcome.REFUSED,
            None, f"{status} {body_text[:120]}",
        )  # fmt: skip


def smtp_deliver(port: int, message: EmailMessage) -> tuple[int, str]:
    """One SMTP transaction; the final reply, or 0 and the error when the connection broke."""
    sender = str(message["From"]).split("<")[-1].rstrip(">")
    try:
        with smtplib.SMTP(timeout=ANSWER_TIMEOUT_SECONDS) as client:
            # Connected inside the block: smtplib's constructor leaves its socket open
            # when the server goes away before its greeting (an SMTP ingestor killed).
            client.connect("127.0.0.1", port)
            client.ehlo()
            for code, text in (client.mail(sender), client.rcpt("soporte@support.example.com")):
                if code != 250:
                    return code, text.decode(errors="replace")
            code, text = client.data(message.as_bytes(policy=policy.SMTP))
            return code, text.decode(errors="replace")
    except (OSError, smtplib.SMTPException) as error:
        return 0, f"{type(error).__name__}: {error}"


def run_load(load: Load, inputs: int, rate: float, stop: threading.Event) -> None:
    """Send ``inputs`` at ``rate`` per second, each from a pool thread, paced by the clock."""
    started = time.perf_counter()
    # Enough senders that inputs waiting on a refusal (up to 10 s) never hold up the pace.
    with ThreadPoolExecutor(max_workers=max(64, int(rate * ANSWER_TIMEOUT_SECONDS * 2))) as pool:
        for number in range(inputs):
            if stop.is_set():
                break
            pause = started + number / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(load.send, MIX[number % len(MIX)], number)


# -- the nemesis -----------------------------------------------------------------------


@dataclass
class Nemesis:
    engine: Engine
    faults: list[Fault] = field(default_factory=list)

    def pid_of(self, component: str) -> int:
        found = self.pid_of_all(component)
        if not found:
            raise RuntimeError(f"no {component} process is running")
        return min(found)

    def act(self, fault: str) -> None:
        getattr(self, fault.replace("-", "_"))()

    def noted(self, name: str, target: str) -> None:
        self.faults.append(Fault(name, time.time(), target))
        print(f"nemesis: {name} ({target})", flush=True)

    def broker(self) -> None:
        settings = self.engine.settings
        leaders = partition_leaders(settings.kafka_bootstrap)
        if leaders is None:
            raise RuntimeError("the cluster does not answer")
        nodes = {node.node_id: node for node in broker.cluster_nodes(settings)}
        node_id = max(nodes, key=lambda n: len(leaders.led_by(n)))
        pid = broker.running_pid(nodes[node_id].paths)
        if pid is None:
            raise RuntimeError(f"broker node {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        self.noted("kill broker", f"node {node_id}, leader of {len(leaders.led_by(node_id))}")
        time.sleep(BROKER_DOWN_SECONDS)
        broker.start(settings)

    def processor(self) -> None:
        pid = self.pid_of("processor")
        os.kill(pid, signal.SIGKILL)
        self.noted("kill processor", f"pid {pid}")

    def sla(self) -> None:
        pid = self.pid_of("sla")
        os.kill(pid, signal.SIGSTOP)
        self.noted("stop SLA worker 20 s", f"pid {pid}")
        time.sleep(SLA_STOP_SECONDS)
        os.kill(pid, signal.SIGCONT)

    def smtp(self) -> None:
        """Kill the SMTP ingestor that holds a transaction half-way through its DATA."""
        port = self.engine.process.smtp_port
        with smtplib.SMTP(timeout=ANSWER_TIMEOUT_SECONDS) as client:
            client.connect("127.0.0.1", port)
            client.ehlo()
            client.mail("killed@acme.example")
            client.rcpt("soporte@support.example.com")
            client.putcmd("data")
            client.getreply()
            client.send(b"Subject: half a mail\r\n\r\nThe first half of the body")
            assert client.sock is not None
            client_port = client.sock.getsockname()[1]
            pid = owner_of_connection(port, client_port, self.pid_of_all("smtp"))
            os.kill(pid, signal.SIGKILL)
            self.noted("kill SMTP mid-DATA", f"pid {pid}")
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.send(b"\r\n.\r\n")
                client.getreply()

    def pid_of_all(self, component: str) -> list[int]:
        return self.engine.process.children().get(component, [])

    def mail_parser(self) -> None:
        pid = self.pid_of("mail-parser")
        os.kill(pid, signal.SIGKILL)
        self.noted("kill mail parser", f"pid {pid}")


def owner_of_connection(server_port: int, client_port: int, candidates: list[int]) -> int:
    """Which of ``candidates`` holds the server side of the loopback connection from
    ``client_port`` (read from /proc/net/tcp and each process's descriptors)."""
    inode = ""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    wanted = f"socket:[{inode}]"
    for pid in candidates:
        with contextlib.suppress(OSError):
            for descriptor in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(descriptor) == wanted:
                        return pid
    raise RuntimeError(f"no SMTP process holds the connection from port {client_port}")


def run_nemesis(
    nemesis: Nemesis, faults: tuple[str, ...], load_seconds: float, stop: threading.Event
) -> None:
    """One fault of each kind, spread evenly from 10 s into the load (the engine warm,
    as a user's is) to 90 % of it, each on its own clock: a fault that takes a while (a
    broker's restart, a 20 s stop) does not delay the next."""
    started = time.monotonic() + WARM_UP_SECONDS
    spacing = (0.9 * load_seconds - WARM_UP_SECONDS) / max(1, len(faults))
    acting = []
    for index, fault in enumerate(faults):
        wait = started + spacing * (index + 0.5) - time.monotonic()
        if stop.wait(max(0.0, wait)):
            break
        thread = threading.Thread(target=act_and_report, args=(nemesis, fault))
        thread.start()
        acting.append(thread)
    for thread in acting:
        thread.join()


def act_and_report(nemesis: Nemesis, fault: str) -> None:
    try:
        nemesis.act(fault)
    except (RuntimeError, OSError, smtplib.SMTPException, EngineError) as error:
        print(f"nemesis: {fault} not done: {error}", flush=True)


# -- reading back ----------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str) -> list[tuple[str | None, dict[str, Any], float]]:
    """Every record of ``topic`` up to its end now: key, JSON value, Kafka timestamp (s)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        request_timeout_ms=30000,
        **kafka_python_options(security_for(bootstrap)),
    )  # fmt: skip
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[tuple[str | None, dict[str, Any], float]] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            consumer.position(tp) < ends[tp] for tp in partitions
        ):
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    key = record.key.decode() if record.key else None
                    found.append((key, json.loads(record.value), record.timestamp / 1000))
        return found
    finally:
        consumer.close()


def message_id(value: str | None) -> str:
    return (value or "").strip().strip("<>").lower()


@dataclass
class ReadBack:
    events: list[Record]
    routed: list[Record]
    alerts: list[str]
    escalations: list[str]


def read_back(bootstrap: str) -> ReadBack:
    events = []
    for key, value, stamp in read_topic(bootstrap, TICKET_EVENTS):
        data = value.get("data", {})
        if value.get("kind") == "email.received":
            identity = message_id(data.get("message_id"))
        elif value.get("kind") == "chat.message.received":
            identity = value["event_id"]
        else:
            continue
        events.append(Record(key, value["event_id"], identity, data.get("ticket_id"), stamp))
    for key, value, stamp in read_topic(bootstrap, SNMP_TRAPS):
        data = value.get("data", {})
        if data.get("pdu") == "inform":
            events.append(
                Record(key, value["event_id"], str(data.get("request_id")),
                       data.get("ticket_id"), stamp)
            )  # fmt: skip
    routed = [
        Record(key, value["event_id"], "", key, stamp)
        for topic in TIER_TOPICS.values()
        for key, value, stamp in read_topic(bootstrap, topic)
    ]
    # An alert is its kind (warning, breach), dedup key and repeat (sla-and-entitlements.md).
    alerts = [
        f"{value['kind']}|{value['data']['dedup_key']}|{value['data']['repeat']}"
        for _, value, _ in read_topic(bootstrap, SLA_ALERTS)
        if "dedup_key" in value.get("data", {})
    ]
    escalations = [value["data"]["dedup_key"] for _, value, _ in read_topic(bootstrap, ESCALATIONS)]
    return ReadBack(events, routed, alerts, escalations)


def with_ticket_ids(inputs: list[Sent], events: list[Record]) -> list[Sent]:
    """INFORMs learn their ticket from the kept notification (the response names none);
    Message-IDs are compared as the parser records them."""
    tickets = {event.identity: event.ticket_id for event in events}
    found = []
    for sent in inputs:
        identity = (
            message_id(sent.identity) if sent.kind in (Kind.MAIL, Kind.REPLY) else (sent.identity)
        )
        ticket = sent.ticket_id or tickets.get(identity)
        found.append(
            Sent(sent.kind, identity, sent.sent_at, sent.answered_at, sent.outcome, ticket,
                 sent.answer)
        )  # fmt: skip
    return found


def settled(engine: Engine, inputs: list[Sent], timeout: float) -> ReadBack:
    """Read back until every acknowledged input has its event and its ticket is routed,
    or ``timeout`` (a reply's ticket is routed already when its own event still waits
    in a restarted parser's backlog)."""
    deadline = time.monotonic() + timeout
    while True:
        found = read_back(engine.settings.kafka_bootstrap)
        routed = {record.key for record in found.routed}
        present = {event.identity for event in found.events}
        waiting = [
            sent
            for sent in with_ticket_ids(inputs, found.events)
            if sent.outcome is Outcome.ACKED
            and (sent.identity not in present or sent.ticket_id not in routed)
        ]
        if not waiting or time.monotonic() > deadline:
            return found
        print(f"checker: {len(waiting)} acknowledged inputs without event or route yet",
              flush=True)  # fmt: skip
        time.sleep(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_component(engine: Engine) -> dict[str, float]:
    """CPU seconds used so far by the running processes of each component and broker node
    (a process killed by the nemesis takes its own with it)."""
    used: dict[str, float] = {}
    for name, pids in engine.process.children().items():
        used[name] = sum(cpu_seconds(pid) for pid in pids)
    for node in broker.cluster_nodes(engine.settings):
        pid = broker.running_pid(node.paths)
        used[f"kafka node {node.node_id}"] = cpu_seconds(pid) if pid else 0.0
    return dict(sorted(used.items(), key=lambda item: -item[1]))


# -- the campaign ----------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    inputs: int
    rate: float
    sla_scale: float = 120.0
    settle_seconds: float = 180.0
    faults: tuple[str, ...] = FAULTS
    log_level: str = "WARN"


FULL = Campaign(9000, 50.0)
# SLA time fast enough that P1 updates fall due (every 30 s) while the 60 s load runs.
QUICK = Campaign(1500, 25.0, sla_scale=240.0)


def run_campaign(
    campaign: Campaign,
    state: Path,
    log: Callable[[str], None] = print,
    on_ready: Callable[[Engine], None] | None = None,
    after_load: Callable[[Engine], None] | None = None,
) -> Report:
    """Run ``campaign`` on a new engine in ``state``; ``on_ready`` and ``after_load`` may
    look at the running engine before the load and once everything is read back."""
    load_seconds = campaign.inputs / campaign.rate
    with running_engine(state, campaign.sla_scale, campaign.log_level) as engine:
        if on_ready:
            on_ready(engine)
        log(f"engine up --nodes {NODES} --replicas {REPLICAS}: ready; "
            f"{campaign.inputs} inputs at {campaign.rate:g}/s ({load_seconds:.0f} s)")  # fmt: skip
        load = Load(engine)
        nemesis = Nemesis(engine)
        stop = threading.Event()
        chaos = threading.Thread(
            target=run_nemesis, args=(nemesis, campaign.faults, load_seconds, stop)
        )
        chaos.start()
        try:
            run_load(load, campaign.inputs, campaign.rate, stop)
        finally:
            stop.set()
            chaos.join()
        used = cpu_by_component(engine)
        log(
            "CPU seconds by component (its running processes, from the start): "
            + ", ".join(f"{name} {seconds:.0f}" for name, seconds in used.items())
        )
        log(f"load done: {len(load.sent)} inputs answered; reading every topic back")
        found = settled(engine, load.sent, campaign.settle_seconds)
        with (state / "inputs.jsonl").open("w") as kept:
            for sent in with_ticket_ids(load.sent, found.events):
                kept.write(json.dumps(dataclasses.asdict(sent)) + "\n")
            for fault in nemesis.faults:
                kept.write(json.dumps({"fault": dataclasses.asdict(fault)}) + "\n")
        if after_load:
            after_load(engine)
        relayed = [message_id(str(m["Message-ID"])) for m in list(engine.relay.messages)]
        return check(
            with_ticket_ids(load.sent, found.events),
            found.events,
            found.routed,
            found.alerts,
            found.escalations,
            relayed,
            nemesis.faults,
            RECOVERY_WINDOW_SECONDS,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=FULL.inputs)
    parser.add_argument("--rate", type=float, default=FULL.rate)
    parser.add_argument("--quick", action="store_true", help="1,500 inputs at 25/s")
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    parser.add_argument("--no-faults", action="store_true", help="the load alone, as a baseline")
    parser.add_argument(
        "--faults", help=f"a comma-separated subset of {','.join(FAULTS)}, in that order"
    )
    parser.add_argument(
        "--log-level",
        default="WARN",
        choices=("DEBUG", "INFO", "WARN", "ERROR"),
        help="the components' log level in up.log (with --keep, to read a fault's timeline)",
    )
    args = parser.parse_args()
    campaign = dataclasses.replace(
        QUICK if args.quick else Campaign(args.inputs, args.rate), log_level=args.log_level
    )
    if args.no_faults or args.faults:
        chosen = set(args.faults.split(",")) if args.faults else set()
        unknown = chosen - set(FAULTS)
        if unknown:
            parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
        campaign = dataclasses.replace(
            campaign, faults=tuple(fault for fault in FAULTS if fault in chosen)
        )
    state = Path(tempfile.mkdtemp(prefix="chaos-"))
    report = run_campaign(campaign, state)
    print(render(report, PAUSE_TARGET_SECONDS))
    print(f"machine: {os.cpu_count()} cores, load average {Path('/proc/loadavg').read_text()}")
    print(f"state and logs: {state}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(state, ignore_errors=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
