"""End-to-end latency of a mixed load: from the ingestor's acknowledgement to the routed record.

Starts its own broker (a temporary state dir, free ports) and ``engine up
--bootstrap-servers`` on it, every component as ``engine up`` runs it, with the defaults
(only the ports, the state dir and the API's tokens file are set). The load is a mix of
40 % mails through SMTP (one connection each, each from its own sender), 40 % chat
messages through the HTTP API (each opening its own conversation, spread over
``--integrations`` API tokens, since each token may post 600 a minute by default) and 20 %
SNMPv2c linkDown traps over UDP (each of its own alarm: ifIndex 1, 2, ...), each opening
its own ticket. Arrivals are open-loop and Poisson: an input is sent when it is due,
whether or not the earlier ones were answered.

1. Maximum: the mix at rising rates (``--start-rate`` per second, times ``--factor`` every
   ``--step-seconds``) until the engine stops keeping up: the backlog (inputs sent and not
   yet routed, counted by the routed records' CreateTime) grows by more than a fifth of a
   second's input over the step's last three quarters or ends above half a second's
   input, more than 1 % of the inputs are refused, or the driver itself falls behind. A
   step that fails is tried once more after the backlog drained (a stall of this shared
   machine can fail one). The sustained maximum is the last rate that kept up.
2. Latency: the same mix at half that maximum for ``--seconds``; it also prints the cores
   each process of the run used meanwhile, the whole machine's, and the share of the time
   some task waited for a core (the kernel's CPU pressure: other work on the machine).

Latency is from the acknowledgement, on the driver's wall clock (the SMTP server's 250
after DATA; the API's 202; a v2c trap has none, so its send time), to the Kafka CreateTime
of the ticket's record on ``tickets.routed.<tier>.v1`` (the processor's producer sets it,
on the same clock; milliseconds, so a latency can read up to 1 ms short). Percentiles are
nearest-rank. To show where the time goes it also reads the CreateTime of each ticket's
first record on ``tickets.events.v1`` (written by the mail parser, the API or the SNMP
receiver) and, for mails, on ``mail.spool.v1`` (the SMTP ingestor): ack to event is the
ingest path after the acknowledgement (the mail parser's share, or the receiver's for a
trap; a chat's event is written before its 202), event to routed is the processor's.
Target (issue 14): p99 <= 50 ms over all channels.

    python -m bench.e2e [--seconds 45] [--start-rate 30] [--factor 1.3] [--step-seconds 8]
    python -m bench.e2e --rate 120    # skip the search: half of 120/s
    python -m bench.e2e --quick       # a smoke run: short steps, 15 s at half the maximum
    python -m bench.e2e --dump FILE   # and phase 2's inputs with their times, JSON lines
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import aiohttp

from bench.classify_rules import messages
from bench.storm import (
    COMMUNITY,
    LINK_ALARM,
    Ports,
    engine_log_tail,
    load_average,
    percentile,
    restarts,
    shown,
    start_engine,
    stop_group,
    stop_on_sigterm,
    verdict,
    wait_ready,
)
from engine.contract.identity import chat_ticket_id
from engine.contract.topics import MAIL_SPOOL, TICKET_EVENTS, TIER_TOPICS
from engine.kafka import broker
from engine.kafka.security import kafka_python_options, security_for
from engine.passwords import hash_password
from engine.settings import Settings
from tests.integration.harness import free_port, port_open, wait_until
from tests.integration.snmp_peers import encoded_link_trap

MIX: dict[str, float] = {"mail": 0.4, "chat": 0.4, "trap": 0.2}
CHANNELS = tuple(MIX)
TARGET_P99_SECONDS = 0.050
SUPPORT_ADDRESS = "soporte@support.example.com"
TOKEN = re.compile(r"e2e-[0-9a-f]{6}-\d+")
READY_SECONDS = 240.0
# Tokens checked at once in the warm-up: fewer than engine.api.service.FAILED_LOGINS_PER_MINUTE.
WARM_UP_TOKENS_AT_ONCE = 10
SEND_TIMEOUT_SECONDS = 30.0
MAX_IN_FLIGHT = 3000
# A step keeps up when the backlog grew by at most this many seconds' worth of input,
# ended at most this many (it recovered from what it met)...
BACKLOG_GROWTH_SECONDS = 0.2
BACKLOG_END_SECONDS = 0.5
# ...fewer than this share of its inputs were refused, and the driver was on time.
MAX_REFUSED_SHARE = 0.01
MAX_DRIVER_LAG_SECONDS = 0.05
# Routed records later than this after a step ends are not counted in its verdict.
FOLLOW_GRACE_SECONDS = 1.0


# -- the follower: CreateTimes of each ticket's records (its own process) -----------------


def follow(bootstrap: str) -> None:
    """Print, for every ticket, the CreateTime (ms) of its first record on the mail spool
    (``S key ms``), the ticket events (``E key ms``) and the tier topics (``R match key
    ms``: match is a mail's token, a chat's ticket id, ``trap:<ifIndex>``)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        # few, larger fetches: this process shares the cores with the engine it measures
        fetch_min_bytes=256 * 1024, fetch_max_wait_ms=300,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        **kafka_python_options(security_for(bootstrap)),
    )  # fmt: skip
    tiers = set(TIER_TOPICS.values())
    kinds = {MAIL_SPOOL: "S", TICKET_EVENTS: "E"}
    seen: set[tuple[str, bytes]] = set()
    try:
        assigned = [
            TopicPartition(topic, partition)
            for topic in (MAIL_SPOOL, TICKET_EVENTS, *tiers)
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        while True:
            lines = []
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.timestamp_type != 0:
                        lines.append("W LogAppendTime\n")
                    if record.key is None or (record.topic, record.key) in seen:
                        continue
                    seen.add((record.topic, record.key))
                    key = record.key.decode()
                    if record.topic in tiers:
                        match = routed_match(key, record.value)
                        if match is not None:
                            lines.append(f"R {match} {key} {record.timestamp}\n")
                    else:
                        lines.append(f"{kinds[record.topic]} {key} {record.timestamp}\n")
            if lines:
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def routed_match(key: str, value: bytes) -> str | None:
    ticket = json.loads(value)["data"]["ticket"]
    if ticket["channel"] == "email":
        found = TOKEN.search(str(ticket["subject"]))
        return found.group() if found else None
    if ticket["channel"] == "chat":
        return key
    alarm = ticket.get("alarm")
    if ticket["channel"] == "snmp" and alarm and LINK_ALARM in alarm["key"]:
        return "trap:" + str(alarm["key"]).rpartition("|")[2]
    return None


@dataclass
class Seen:
    """What the follower reported, in seconds since the epoch."""

    spooled: dict[str, float] = field(default_factory=dict)
    evented: dict[str, float] = field(default_factory=dict)
    routed: dict[str, tuple[str, float]] = field(default_factory=dict)  # match: (key, at)
    log_append_time: bool = False


def start_follower(bootstrap: str) -> tuple[subprocess.Popen[str], Seen]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.e2e", "follow", "--bootstrap", bootstrap],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    seen = Seen()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            kind, *rest = line.split()
            if kind == "R":
                seen.routed[rest[0]] = (rest[1], int(rest[2]) / 1000)
            elif kind == "E":
                seen.evented[rest[0]] = int(rest[1]) / 1000
            elif kind == "S":
                seen.spooled[rest[0]] = int(rest[1]) / 1000
            elif kind == "W":
                seen.log_append_time = True

    threading.Thread(target=read, name="follower-reader", daemon=True).start()
    return process, seen


# -- the inputs ------------------------------------------------------------------------


@dataclass
class Input:
    channel: str
    match: str  # how its routed record is found (see routed_match)
    due: float  # perf_counter when it was due
    launched: float  # wall clock when the driver began sending it
    acked: float | None = None  # wall clock of the 250 / 202 (a trap: its send time)
    status: int | None = None  # 250, 202; 0 for a trap
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status in (0, 202, 250)


def texts(channel: str) -> list[tuple[str, str]]:
    """Subjects and texts of the labelled set's messages of one channel."""
    found = [(m.subject or "Consulta", m.body) for m in messages() if m.channel.value == channel]
    return found or [("Consulta", "La central está caída, no entran ni salen llamadas.")]


def mail_bytes(token: str, subject: str, body: str) -> bytes:
    """One mail, CRLF line ends, dot-stuffed, ending with the DATA terminator."""
    message = EmailMessage()
    message["From"] = f"Cliente <{token}@acme.example>"
    message["To"] = SUPPORT_ADDRESS
    message["Subject"] = f"{subject} (ref {token})"
    message["Message-ID"] = f"<{token}@acme.example>"
    message.set_content(f"{body}\n\nReferencia {token}\n")
    data = message.as_bytes(policy=SMTP_POLICY)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data + b".\r\n"


async def smtp_reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise ConnectionError(f"SMTP reply cut short: {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])


def link_down(if_index: int) -> bytes:
    """A v2c linkDown trap of ``if_index`` (one alarm each), with the default community."""
    return encoded_link_trap(COMMUNITY, if_index, if_index, uptime=if_index)


@dataclass(frozen=True)
class Endpoints(Ports):
    """`engine up`'s ports (bench.storm's, and the API's), and the API's tokens file."""

    api: int = field(default_factory=free_port)
    tokens_file: Path = Path("api-tokens")

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "ENGINE_API_PORT": str(self.api),
            "ENGINE_API_TOKENS_FILE": str(self.tokens_file),
            # every chat comes from this one machine: the per-address limit (a visitor's
            # share of a widget's token) would measure the limit, not the engine
            "ENGINE_API_CHAT_LIMIT_PER_ADDRESS": str(1_000_000),
        }


def write_tokens(path: Path, count: int, run_id: str) -> list[str]:
    """``count`` chat integrations, each with its own token (hashed as `engine api-token`
    does, in threads: PBKDF2 runs outside the GIL)."""
    tokens = [f"e2e-chat-{n}.{run_id}-{os.urandom(16).hex()}" for n in range(count)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        hashes = list(pool.map(hash_password, tokens))
    lines = [f"{t.partition('.')[0]}:chat:write:{h}\n" for t, h in zip(tokens, hashes, strict=True)]
    path.write_text("".join(lines))
    return tokens


class Driver:
    """Sends the mix open-loop: each input in its own task, when it is due."""

    def __init__(self, endpoints: Endpoints, tokens: list[str], run_id: str, seed: int) -> None:
        self.endpoints = endpoints
        self.tokens = tokens
        self.run_id = run_id
        self.random = random.Random(seed)
        self.numbers = iter(range(1, 1 << 62))
        self.traps = iter(range(1, 1 << 31))
        self.mail_texts = texts("email")
        self.chat_texts = texts("chat")
        self.in_flight: set[asyncio.Task[None]] = set()
        self.session: aiohttp.ClientSession | None = None
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.setblocking(False)
        self.udp.connect(("127.0.0.1", endpoints.snmp))
        self.skipped = 0

    async def __aenter__(self) -> Driver:
        connector = aiohttp.TCPConnector(limit=256)
        self.session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self.in_flight):
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        self.udp.close()

    def pick(self) -> str:
        return self.random.choices(CHANNELS, weights=[MIX[c] for c in CHANNELS])[0]

    def launch(self, channel: str, due: float) -> Input | None:
        """Start sending one input of ``channel``; None if too many are in flight."""
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            self.skipped += 1
            return None
        number = next(self.numbers)
        token = f"e2e-{self.run_id}-{number}"
        if channel == "trap":
            if_index = next(self.traps)
            datagram = link_down(if_index)
            item = Input(channel, f"trap:{if_index}", due, time.time())
            try:
                self.udp.send(datagram)
                item.acked, item.status = item.launched, 0
            except OSError as error:
                item.error = repr(error)
            return item
        if channel == "mail":
            subject, body = self.mail_texts[number % len(self.mail_texts)]
            item = Input(channel, token, due, time.time())
            coroutine = self.mail(item, mail_bytes(token, subject, body))
        else:
            conversation = f"{token}-{number:06d}"
            item = Input(channel, chat_ticket_id(conversation), due, time.time())
            coroutine = self.chat(item, conversation, number)
        task = asyncio.get_running_loop().create_task(self.guarded(item, coroutine))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        return item

    async def guarded(self, item: Input, coroutine: Any) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                await coroutine
        except Exception as error:  # recorded: the input counts as refused
            item.error = repr(error)

    async def mail(self, item: Input, data: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.endpoints.smtp)
        try:
            steps = [
                (None, 220),
                (b"EHLO e2e.example\r\n", 250),
                (f"MAIL FROM:<{item.match}@acme.example>\r\n".encode(), 250),
                (f"RCPT TO:<{SUPPORT_ADDRESS}>\r\n".encode(), 250),
                (b"DATA\r\n", 354),
            ]
            for command, expected in steps:
                if command is not None:
                    writer.write(command)
                code = await smtp_reply(reader)
                if code != expected:
                    item.status = code
                    return
            writer.write(data)
            item.status = await smtp_reply(reader)
            item.acked = time.time()
            writer.write(b"QUIT\r\n")
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()

    async def chat(self, item: Input, conversation: str, number: int) -> None:
        assert self.session is not None
        _, text = self.chat_texts[number % len(self.chat_texts)]
        body = {"message_id": "m1", "sender": f"cliente{number}@acme.example",
                "text": f"{text}\n\nReferencia {item.match}"}  # fmt: skip
        token = self.tokens[number % len(self.tokens)]
        url = f"http://127.0.0.1:{self.endpoints.api}/chat/conversations/{conversation}/messages"
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.post(url, json=body, headers=headers) as answer:
            item.acked, item.status = time.time(), answer.status
            await answer.read()

    async def paced(self, rate: float, seconds: float) -> tuple[list[Input], float]:
        """Poisson arrivals at ``rate`` per second for ``seconds``; the inputs and the mean
        lateness of the driver (seconds between when an input was due and sent)."""
        made: list[Input] = []
        late = 0.0
        started = time.perf_counter()
        due = started
        while True:
            due += self.random.expovariate(rate)
            if due >= started + seconds:
                break
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            late += time.perf_counter() - due
            item = self.launch(self.pick(), due)
            if item is not None:
                made.append(item)
        return made, late / max(1, len(made))

    async def settle(self, within: float) -> None:
        """Until every input sent has its answer, or ``within`` seconds."""
        if self.in_flight:
            await asyncio.wait(list(self.in_flight), timeout=within)


# -- the phases ------------------------------------------------------------------------


def routed_at(seen: Seen, item: Input) -> float | None:
    found = seen.routed.get(item.match)
    return found[1] if found else None


def all_routed(seen: Seen, items: Iterable[Input]) -> bool:
    return all(item.match in seen.routed for item in items if item.accepted)


async def routed_or_timeout(seen: Seen, items: list[Input], within: float) -> None:
    """Until every accepted input is routed, or ``within`` seconds, or 20 s without
    progress."""
    deadline = time.monotonic() + within
    last, changed = -1, time.monotonic()
    while time.monotonic() < deadline and not all_routed(seen, items):
        count = len(seen.routed)
        if count != last:
            last, changed = count, time.monotonic()
        elif time.monotonic() - changed > 20:
            return
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Step:
    rate: float
    inputs: list[Input]
    backlog: tuple[float, float]  # inputs sent and not routed: early and late in the step
    refused: int
    lateness: float  # the driver's mean lateness, seconds
    skipped: int

    @property
    def growth(self) -> float:
        return self.backlog[1] - self.backlog[0]

    @property
    def drained(self) -> bool:
        return (
            self.growth <= BACKLOG_GROWTH_SECONDS * self.rate
            and self.backlog[1] <= BACKLOG_END_SECONDS * self.rate
        )

    @property
    def kept_up(self) -> bool:
        return (
            self.drained
            and self.refused <= MAX_REFUSED_SHARE * max(1, len(self.inputs))
            and self.lateness <= MAX_DRIVER_LAG_SECONDS
            and self.skipped == 0
        )

    @property
    def why(self) -> str:
        if self.kept_up:
            return "kept up"
        reasons = []
        if not self.drained:
            reasons.append("backlog grew")
        if self.refused > MAX_REFUSED_SHARE * max(1, len(self.inputs)):
            reasons.append("inputs refused")
        if self.lateness > MAX_DRIVER_LAG_SECONDS or self.skipped:
            reasons.append("the driver fell behind")
        return ", ".join(reasons)


def backlog_levels(
    seen: Seen, inputs: list[Input], start: float, end: float
) -> tuple[float, float]:
    """Backlog (sent, not yet routed by CreateTime) in the first and the last third of
    [start, end], each the mean of samples every 100 ms."""

    def backlog(at: float) -> int:
        sent = sum(1 for item in inputs if item.launched <= at and item.error is None)
        routed = sum(1 for item in inputs if (r := routed_at(seen, item)) is not None and r <= at)
        return sent - routed

    third = (end - start) / 3
    first = [backlog(start + k * 0.1) for k in range(max(1, int(third * 10)))]
    last = [backlog(end - third + k * 0.1) for k in range(max(1, int(third * 10)))]
    return sum(first) / len(first), sum(last) / len(last)


async def search_maximum(
    driver: Driver, seen: Seen, args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[float | None, list[Step]]:
    """Rising rates until one does not keep up twice in a row (a stall of this shared
    machine can fail a step that the engine keeps up with), or the time is up; the last
    rate that kept up."""
    steps: list[Step] = []
    best: float | None = None
    rate = float(args.start_rate)
    started = time.monotonic()
    again = False
    while time.monotonic() - started + args.step_seconds <= args.search_seconds:
        wall = time.time()
        skipped = driver.skipped
        inputs, lateness = await driver.paced(rate, args.step_seconds)
        await asyncio.sleep(FOLLOW_GRACE_SECONDS)  # the follower catches up
        refused = sum(1 for item in inputs if not item.accepted)
        # the first quarter is the previous step's settling; the grace is left out
        window = (wall + args.step_seconds / 4, wall + args.step_seconds)
        backlog = backlog_levels(seen, inputs, *window)
        step = Step(rate, inputs, backlog, refused, lateness, driver.skipped - skipped)
        steps.append(step)
        log(f"  {rate:7.1f}/s: {len(inputs):5} sent, {refused} refused, backlog "
            f"{backlog[0]:.0f} to {backlog[1]:.0f}, driver late {lateness * 1000:.1f} ms: "
            f"{step.why}")  # fmt: skip
        if not step.kept_up:
            if again:
                break
            again = True
            await driver.settle(args.wait)  # the backlog drains before the same rate again
            await routed_or_timeout(seen, inputs, args.wait)
            continue
        again = False
        best = rate
        rate *= args.factor
    return best, steps


# -- the report ------------------------------------------------------------------------


def stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"p50 {shown(percentile(values, 0.5))}, p99 {shown(percentile(values, 0.99))}, "
            f"max {shown(max(values))}")  # fmt: skip


def latencies(seen: Seen, items: list[Input]) -> list[float]:
    found = []
    for item in items:
        at = routed_at(seen, item)
        if item.accepted and item.acked is not None and at is not None:
            found.append(at - item.acked)
    return found


def stage(seen: Seen, items: list[Input], begin: str, end: str) -> list[float]:
    """Seconds between two points of each input's path: ``ack``, ``spool``, ``event`` or
    ``routed`` (the last three: CreateTimes of the ticket's records)."""
    found = []
    for item in items:
        routed = seen.routed.get(item.match)
        if routed is None or not item.accepted or item.acked is None:
            continue
        key = routed[0]
        points = {"ack": item.acked, "routed": routed[1], "event": seen.evented.get(key),
                  "spool": seen.spooled.get(key)}  # fmt: skip
        first, last = points[begin], points[end]
        if first is not None and last is not None:
            found.append(last - first)
    return found


def report(args: argparse.Namespace, result: Result, seen: Seen, loads: list[str]) -> None:
    steps, maximum, rate, items = result.steps, result.maximum, result.rate, result.items
    mix = ", ".join(f"{share:.0%} {c}" for c, share in MIX.items())
    print(f"mix: {mix} (mails by SMTP, chats by HTTP, v2c linkDown traps by UDP), "
          "Poisson arrivals, one ticket each")  # fmt: skip
    print(f"load average (1/5/15 min): at start {loads[0]}, at end {loads[-1]}")
    if steps:
        print(f"phase 1, maximum: {len(steps)} steps of {args.step_seconds:g} s, "
              f"x{args.factor:g} from {args.start_rate:g}/s")  # fmt: skip
        for step in steps:
            p50 = percentile(latencies(seen, step.inputs), 0.5)
            print(f"  {step.rate:7.1f}/s: {len(step.inputs):5} sent, {step.refused} refused, "
                  f"backlog {step.backlog[0]:4.0f} to {step.backlog[1]:4.0f}, "
                  f"p50 {shown(p50)}: {step.why}")  # fmt: skip
        if maximum is None:
            print("  sustained maximum: none of the rates kept up")
        else:
            print(f"  sustained maximum: {maximum:.1f} inputs/s")
    else:
        print(f"phase 1 skipped: maximum given as {args.rate:g}/s")
    sent = len(items)
    print(f"phase 2: {rate:.1f} inputs/s for {args.seconds:g} s ({sent} sent)")
    print("  ack to routed (250 / 202 / trap sent, to the routed record's CreateTime):")
    for channel in (*CHANNELS, "all"):
        chosen = [i for i in items if channel in (i.channel, "all")]
        accepted = [i for i in chosen if i.accepted]
        routed = [i for i in accepted if i.match in seen.routed]
        print(f"    {channel:5} sent {len(chosen):5}, acknowledged {len(accepted):5}, routed "
              f"{len(routed):5}: {stats(latencies(seen, chosen))}")  # fmt: skip
    print("  where it goes (CreateTimes of each ticket's records):")
    mails = [i for i in items if i.channel == "mail"]
    chats = [i for i in items if i.channel == "chat"]
    traps = [i for i in items if i.channel == "trap"]
    print(f"    mail, 250 to event (mail parser)    : {stats(stage(seen, mails, 'ack', 'event'))}")
    print(f"    mail, spool record to 250 (ingestor): {stats(stage(seen, mails, 'spool', 'ack'))}")
    print(f"    chat, event record to 202 (API)     : {stats(stage(seen, chats, 'event', 'ack'))}")
    print(f"    trap, sent to event (SNMP receiver) : {stats(stage(seen, traps, 'ack', 'event'))}")
    for channel, chosen in (("mail", mails), ("chat", chats), ("trap", traps), ("all", items)):
        print(f"    {channel:4}, event to routed (processor)  : "
              f"{stats(stage(seen, chosen, 'event', 'routed'))}")  # fmt: skip
    cores = sorted(result.cpu.items(), key=lambda pair: -pair[1])
    shares = ", ".join(f"{n} {used:.2f}" for n, used in cores if n not in ("machine", "waited"))
    print(f"  cores used while phase 2 sent (of {os.cpu_count()}): whole machine "
          f"{result.cpu.get('machine', math.nan):.2f}; {shares}")  # fmt: skip
    if "waited" in result.cpu:
        print(f"  time some task waited for a core meanwhile (CPU pressure): "
              f"{result.cpu['waited']:.0%}")  # fmt: skip
    errors = sorted({i.error or str(i.status) for i in items if not i.accepted})
    if errors:
        print(f"  refused or failed: {errors[:5]}")
    overall = latencies(seen, items)
    p99 = percentile(overall, 0.99)
    complete = len(overall) == sent
    met = complete and p99 <= TARGET_P99_SECONDS
    missing = "" if complete else f"; {sent - len(overall)} not routed"
    print(f"target p99 <= {shown(TARGET_P99_SECONDS)} over all channels: {verdict(met)} "
          f"(p99 {shown(p99)}{missing})")  # fmt: skip


# -- the run ---------------------------------------------------------------------------


@dataclass
class Result:
    steps: list[Step] = field(default_factory=list)
    maximum: float | None = None
    rate: float = 0.0
    items: list[Input] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # cores used while phase 2 sent


async def drive(
    endpoints: Endpoints,
    tokens: list[str],
    seen: Seen,
    args: argparse.Namespace,
    run_id: str,
    meter: CpuMeter,
) -> Result:
    def log(line: str) -> None:
        print(line, flush=True)

    result = Result()

    async with Driver(endpoints, tokens, run_id, args.seed) as driver:
        # warm-up: every token verified once (PBKDF2), a few at a time (one address that
        # presents more unchecked tokens at once than FAILED_LOGINS_PER_MINUTE is told to
        # wait), then one input of each channel routed
        warm = []
        for first in range(0, len(tokens), WARM_UP_TOKENS_AT_ONCE):
            warm += [driver.launch("chat", time.perf_counter())
                     for _ in tokens[first : first + WARM_UP_TOKENS_AT_ONCE]]  # fmt: skip
            await driver.settle(READY_SECONDS)
        warm += [driver.launch("mail", time.perf_counter()),
                 driver.launch("trap", time.perf_counter())]  # fmt: skip
        probes = [item for item in warm if item is not None]
        await driver.settle(READY_SECONDS)
        await routed_or_timeout(seen, probes, READY_SECONDS)
        missing = [(i.channel, i.status, i.error) for i in probes if i.match not in seen.routed]
        if missing:
            raise RuntimeError(f"warm-up inputs not routed: {missing[:5]}")
        log(f"warm-up routed ({len(probes)} inputs); load average {load_average()}")
        result.maximum = args.rate
        if result.maximum is None:
            log("phase 1: the maximum")
            result.maximum, result.steps = await search_maximum(driver, seen, args, log)
            await driver.settle(args.wait)
            await routed_or_timeout(seen, [i for s in result.steps for i in s.inputs], args.wait)
            await asyncio.sleep(2)
        result.rate = rate = (result.maximum or args.start_rate) / 2
        log(f"phase 2: {rate:.1f}/s for {args.seconds:g} s; load average {load_average()}")
        before = meter.snapshot()
        result.items, lateness = await driver.paced(rate, args.seconds)
        result.cpu = meter.since(before)
        await driver.settle(args.wait)
        await routed_or_timeout(seen, result.items, args.wait)
        if lateness > MAX_DRIVER_LAG_SECONDS:
            log(f"note: the driver was {lateness * 1000:.0f} ms late on average")
    return result


# -- where the CPU goes ----------------------------------------------------------------


def cpu_of(pid: int) -> float | None:
    """A process's user and system CPU seconds so far (its own, not its children's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_busy() -> float:
    """CPU seconds the whole machine spent busy so far (every engineer's work)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def cpu_waited() -> float | None:
    """Seconds some task waited for a core so far (the kernel's CPU pressure), or None."""
    try:
        line = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return int(line.rpartition("total=")[2]) / 1e6


@dataclass
class CpuMeter:
    """CPU used by this run's processes: `engine up`'s components (its children, by
    name), the broker, this driver and its follower; and by the whole machine."""

    engine: int
    broker: int | None
    follower: int

    def pids(self) -> dict[str, int]:
        found = {"driver": os.getpid(), "follower": self.follower, "engine up": self.engine}
        if self.broker is not None:
            found["broker"] = self.broker
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.engine and b"engine" in command:
                found[command[command.index(b"engine") + 1].decode()] = int(entry.name)
        return found

    def snapshot(self) -> dict[str, float]:
        taken = {name: cpu for name, pid in self.pids().items() if (cpu := cpu_of(pid)) is not None}
        taken["machine"] = host_busy()
        waited = cpu_waited()
        if waited is not None:
            taken["waited"] = waited
        taken["wall"] = time.monotonic()
        return taken

    def since(self, before: dict[str, float]) -> dict[str, float]:
        """Cores used by each since ``before`` (CPU seconds over wall seconds)."""
        now = self.snapshot()
        wall = now.pop("wall") - before["wall"]
        return {name: (now[name] - before[name]) / wall for name in now if name in before}


def run(args: argparse.Namespace) -> None:
    loads = [load_average()]
    run_id = os.urandom(3).hex()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-", ignore_cleanup_errors=True) as tmp:
        state_dir = Path(tmp)
        settings = Settings(
            state_dir=state_dir, broker_port=free_port(), controller_port=free_port()
        )
        endpoints = Endpoints(tokens_file=state_dir / "api-tokens")
        tokens = write_tokens(endpoints.tokens_file, args.integrations, run_id)
        engine: subprocess.Popen[bytes] | None = None
        follower: subprocess.Popen[str] | None = None

        def log() -> str:
            return engine_log_tail(state_dir)

        try:
            broker.start(settings)
            engine = start_engine(state_dir, settings.kafka_bootstrap, endpoints)
            wait_ready(engine, endpoints, log)
            wait_until(lambda: port_open(endpoints.api), READY_SECONDS, "the API", on_timeout=log)
            follower, seen = start_follower(settings.kafka_bootstrap)
            print(f"engine up ready; load average {load_average()}", flush=True)
            broker_pid = broker.running_pid(broker.BrokerPaths.of(settings))
            meter = CpuMeter(engine.pid, broker_pid, follower.pid)
            result = asyncio.run(drive(endpoints, tokens, seen, args, run_id, meter))
            loads.append(load_average())
            if seen.log_append_time:
                print("warning: some records carry LogAppendTime, not CreateTime")
            for line in restarts(log()):
                print(f"note: {line}")
        finally:
            if follower is not None:
                stop_group(follower, 5)
            if engine is not None:
                stop_group(engine, 60)
            broker.stop(settings)
    report(args, result, seen, loads)
    if args.dump:
        dump(args.dump, result.items, seen)


def dump(path: Path, items: list[Input], seen: Seen) -> None:
    """Phase 2's inputs, one JSON line each: channel, status, and the wall-clock times
    (seconds) of the ack and of the ticket's spool, event and routed records."""
    with path.open("w") as out:
        for item in items:
            key, routed = seen.routed.get(item.match, (None, None))
            line = {"channel": item.channel, "status": item.status, "error": item.error,
                    "due": item.due, "launched": item.launched, "ack": item.acked,
                    "spool": seen.spooled.get(key or ""), "event": seen.evented.get(key or ""),
                    "routed": routed}  # fmt: skip
            out.write(json.dumps(line) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="run", choices=("run", "follow"))
    parser.add_argument("--seconds", type=float, default=45, help="phase 2's length")
    parser.add_argument("--rate", type=float, default=None,
                        help="the maximum (inputs/s), given: no search")  # fmt: skip
    parser.add_argument("--start-rate", type=float, default=30, help="the search's first rate")
    parser.add_argument("--factor", type=float, default=1.3, help="rate increase per step")
    parser.add_argument("--step-seconds", type=float, default=8, help="each step's length")
    parser.add_argument("--search-seconds", type=float, default=110,
                        help="the search's longest time")  # fmt: skip
    parser.add_argument("--integrations", type=int, default=32,
                        help="API tokens the chats are spread over (600/min each)")  # fmt: skip
    parser.add_argument("--wait", type=float, default=120, help="longest wait for a result (s)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--quick", action="store_true",
                        help="4 s steps from 40/s, 15 s at half the maximum")  # fmt: skip
    parser.add_argument("--dump", type=Path, default=None,
                        help="phase 2's inputs and their times, as JSON lines")  # fmt: skip
    parser.add_argument("--bootstrap", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "follow":
        follow(args.bootstrap)
        return
    if args.quick:
        args.step_seconds, args.start_rate, args.seconds, args.search_seconds = 4, 40, 15, 60
        args.factor = max(args.factor, 1.5)
    if (args.rate is not None and args.rate <= 0) or args.start_rate <= 0 or args.factor <= 1:
        parser.error("rates must be positive and the factor above 1")
    stop_on_sigterm()
    run(args)


if __name__ == "__main__":
    main()
