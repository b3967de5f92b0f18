"""The receiver on a real loopback socket with net-snmp's tools as the peer, and a
publisher standing in for Kafka: the authPriv-only mode, and INFORMs answered only once
stored."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from engine.clock import SystemClock
from engine.contract.topics import DEAD_LETTERS, SNMP_TRAPS, TICKET_EVENTS
from engine.errors import PublishError
from engine.ingest.snmp.devices import EMPTY_DEVICES
from engine.ingest.snmp.mibs import MibResolver
from engine.ingest.snmp.pysnmp_adapter import udp_socket
from engine.ingest.snmp.receiver import ReceiverPolicy, SnmpReceiver
from engine.ingest.snmp.replay import TrapBacklog
from engine.ingest.snmp.spool import TrapSpool
from engine.ingest.snmp.users import SnmpUser
from tests.integration.snmp_peers import (
    LINK_DOWN,
    LINK_UP,
    NetSnmp,
    encoded_link_trap,
    link_varbinds,
)
from tests.unit.ingest.snmp.trap_samples import MIBS

ENGINE_ID = "8000000001cc000003"
USER = SnmpUser.model_validate(
    {"name": "nms", "auth": "SHA256", "auth_key": "auth-secret-1", "priv": "AES",
     "priv_key": "priv-secret-1", "engine_ids": [ENGINE_ID]}
)  # fmt: skip


class StandInKafka:
    """Acknowledges every record, or refuses them all while ``down``; ``stored`` are the
    ticket events, ``audit`` the notifications as received."""

    def __init__(self) -> None:
        self.topics: dict[str, list[dict[str, Any]]] = {TICKET_EVENTS: [], SNMP_TRAPS: []}
        self.down = False

    @property
    def stored(self) -> list[dict[str, Any]]:
        return self.topics[TICKET_EVENTS]

    @property
    def audit(self) -> list[dict[str, Any]]:
        return self.topics[SNMP_TRAPS]

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.down:
            raise PublishError("down")
        self.topics.setdefault(topic, []).append(json.loads(value))

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]:
        if self.down:
            return [PublishError("down")] * len(records)
        self.topics.setdefault(topic, []).extend(json.loads(value) for _, value in records)
        return [None] * len(records)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


def run_receiver(
    loop: asyncio.AbstractEventLoop, kafka: StandInKafka, policy: ReceiverPolicy
) -> SnmpReceiver:
    receiver = SnmpReceiver(kafka, policy, MIBS, EMPTY_DEVICES, SystemClock())
    loop.run_until_complete(receiver.start("127.0.0.1", 0, 1 << 20))
    return receiver


async def send(tool: NetSnmp, *args: str) -> int:
    """Run a net-snmp tool without blocking the receiver's loop; its exit status."""
    done = await asyncio.to_thread(tool.run, *args)
    return done.returncode


def test_auth_priv_only_refuses_communities_and_lower_levels(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    kafka = StandInKafka()
    receiver = run_receiver(loop, kafka, ReceiverPolicy(("public",), (USER,), auth_priv_only=True))
    net = NetSnmp(receiver.address[1], tmp_path)
    auth = ["-u", "nms", "-a", "SHA-256", "-A", "auth-secret-1"]
    priv = ["-x", "AES", "-X", "priv-secret-1"]

    async def scenario() -> None:
        target = net.target
        await send(net, "snmptrap", "-v", "2c", "-c", "public", target, "", LINK_DOWN,
                   *link_varbinds(1, up=False))  # fmt: skip
        await send(net, "snmptrap", "-v", "3", "-e", ENGINE_ID, *auth, "-l", "authNoPriv",
                   target, "", LINK_DOWN, *link_varbinds(2, up=False))  # fmt: skip
        await send(net, "snmptrap", "-v", "3", "-e", ENGINE_ID, *auth, "-l", "authPriv", *priv,
                   target, "", LINK_DOWN, *link_varbinds(3, up=False))  # fmt: skip
        for _ in range(100):
            if kafka.stored:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)

    try:
        loop.run_until_complete(scenario())
    finally:
        receiver.stop()
        loop.run_until_complete(receiver.drain())
    assert [e["data"]["security_level"] for e in kafka.stored] == ["authPriv"]


@pytest.mark.parametrize("version", ["2c", "3"])
def test_an_inform_is_answered_only_once_stored(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, version: str
) -> None:
    kafka = StandInKafka()
    receiver = run_receiver(loop, kafka, ReceiverPolicy(("public",), (USER,)))
    net = NetSnmp(receiver.address[1], tmp_path)
    if version == "2c":
        security = ["-c", "public"]
    else:
        security = ["-u", "nms", "-l", "authPriv", "-a", "SHA-256", "-A", "auth-secret-1",
                    "-x", "AES", "-X", "priv-secret-1"]  # fmt: skip
    inform = ["snmpinform", "-v", version, *security, "-t", "1", "-r", "1", net.target, "",
              LINK_DOWN, *link_varbinds(4, up=False)]  # fmt: skip

    async def scenario() -> tuple[int, int]:
        kafka.down = True
        while_down = await send(net, *inform)
        kafka.down = False
        once_back = await send(net, *inform)
        return while_down, once_back

    try:
        while_down, once_back = loop.run_until_complete(scenario())
    finally:
        receiver.stop()
        loop.run_until_complete(receiver.drain())
    assert while_down != 0  # no answer: snmpinform timed out
    assert once_back == 0
    assert len(kafka.stored) == 1


def test_traps_kafka_did_not_take_are_spooled_and_replayed_in_arrival_order(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    kafka = StandInKafka()
    spool = TrapSpool(tmp_path / "spool", max_bytes=1 << 20)
    spool.open()
    backlog = TrapBacklog(spool, kafka)
    receiver = SnmpReceiver(
        kafka, ReceiverPolicy(("public",), ()), MIBS, EMPTY_DEVICES, SystemClock(), backlog=backlog
    )
    loop.run_until_complete(receiver.start("127.0.0.1", 0, 1 << 20))
    net = NetSnmp(receiver.address[1], tmp_path)
    trap = ["snmptrap", "-v", "2c", "-c", "public", net.target, ""]
    inform = ["snmpinform", "-v", "2c", "-c", "public", "-t", "1", "-r", "0", net.target, ""]

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(400):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not within 20 s; spool holds {spool.records}")

    async def scenario() -> int:
        kafka.down = True
        await send(net, *trap, LINK_DOWN, *link_varbinds(1, up=False))
        await until(lambda: spool.records == 2)  # its audit record and its ticket event
        await send(net, *trap, LINK_DOWN, *link_varbinds(2, up=False))
        unanswered = await send(net, *inform, LINK_DOWN, *link_varbinds(3, up=False))
        kafka.down = False
        await send(net, *trap, LINK_UP, *link_varbinds(1, up=True))
        await until(lambda: spool.records == 8)
        stop = asyncio.Event()
        replay = asyncio.ensure_future(backlog.replay(stop))
        await until(lambda: spool.empty)
        await send(net, *trap, LINK_DOWN, *link_varbinds(4, up=False))
        await until(lambda: len(kafka.stored) == 5)
        stop.set()
        await replay
        return unanswered

    try:
        unanswered = loop.run_until_complete(scenario())
    finally:
        receiver.stop()
        loop.run_until_complete(receiver.drain())
        spool.close()
    assert unanswered != 0  # a spooled INFORM is not answered
    # Every notification is kept as received too, the spooled ones replayed there.
    assert sorted(e["event_id"] for e in kafka.audit) == sorted(e["event_id"] for e in kafka.stored)
    assert [(e["data"]["alarm_key"][-1], e["data"]["transition"]) for e in kafka.stored] == [
        ("1", "raised"), ("2", "raised"), ("3", "raised"), ("1", "cleared"), ("4", "raised")
    ]  # fmt: skip


def encoded_link(if_index: int, request_id: int, up: bool = False) -> bytes:
    return encoded_link_trap("public", if_index, request_id, up=up, uptime=request_id)


def test_a_storm_is_folded_per_alarm_and_every_trap_kept_as_received(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    kafka = StandInKafka()
    receiver = SnmpReceiver(
        kafka, ReceiverPolicy(("public",), ()), MIBS, EMPTY_DEVICES, SystemClock(),
        fold_seconds=0.5,
    )  # fmt: skip
    loop.run_until_complete(receiver.start("127.0.0.1", 0, 1 << 22))
    net = NetSnmp(receiver.address[1], tmp_path)
    # A loaded machine may hold the fold's answer for seconds: the INFORM waits for it.
    inform = ["snmpinform", "-v", "2c", "-c", "public", "-t", "20", "-r", "0", net.target, "",
              LINK_DOWN, *link_varbinds(1, up=False)]  # fmt: skip

    def occurrences() -> int:
        return sum(int(event["data"]["occurrences"]) for event in kafka.stored)

    started = time.monotonic()

    async def scenario() -> int:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in range(300):
            sender.sendto(encoded_link(n % 3 + 1, n + 1), receiver.address)
            if n % 50 == 49:
                await asyncio.sleep(0.01)
        sender.close()
        answered = await send(net, *inform)  # folded into port 1's storm
        for _ in range(400):
            if occurrences() == 301:
                break
            await asyncio.sleep(0.05)
        return answered

    try:
        answered = loop.run_until_complete(scenario())
    finally:
        receiver.stop()
        loop.run_until_complete(receiver.drain())
    assert answered == 0  # answered once the fold counting it was on Kafka
    windows = math.ceil((time.monotonic() - started) / 0.5)
    assert occurrences() == 301
    # per port: the first at once, then at most a fold a window (more windows pass on a
    # loaded machine; still far fewer events than the 301 traps)
    assert 3 <= len(kafka.stored) <= 3 * (1 + windows)
    assert len({event["event_id"] for event in kafka.audit}) == 301
    by_port = {event["data"]["alarm_key"] for event in kafka.stored}
    assert len(by_port) == 3


def test_the_receive_buffer_goes_past_rmem_max_when_the_process_may_force_it() -> None:
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    asked = rmem_max * 4
    sock = udp_socket("127.0.0.1", 0, asked)
    try:
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        sock.close()
    if os.geteuid() == 0:  # CAP_NET_ADMIN: forced
        assert granted >= asked
    else:
        assert granted >= rmem_max


class SlowAuditKafka(StandInKafka):
    """Takes records in the order they are handed over, and acknowledges the audit
    records of the first batches last."""

    def __init__(self) -> None:
        super().__init__()
        self.delays = [0.3, 0.2, 0.1]

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[PublishError | None]:
        outcomes = await super().publish_many(topic, records)
        if topic == SNMP_TRAPS and self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return outcomes


def test_raise_and_clear_reach_the_ticket_in_the_order_they_arrived_whatever_acks_first(
    loop: asyncio.AbstractEventLoop,
) -> None:
    kafka = SlowAuditKafka()
    receiver = SnmpReceiver(
        kafka, ReceiverPolicy(("public",), ()), MIBS, EMPTY_DEVICES, SystemClock(),
        fold_seconds=0.5,
    )  # fmt: skip
    loop.run_until_complete(receiver.start("127.0.0.1", 0, 1 << 22))

    async def scenario() -> None:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n, up in enumerate([False, True, False, True]):
            sender.sendto(encoded_link(5, n + 1, up), receiver.address)
            await asyncio.sleep(0.02)  # each its own batch, stored side by side
        sender.close()
        for _ in range(100):
            if len(kafka.stored) == 4:
                return
            await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(scenario())
    finally:
        receiver.stop()
        loop.run_until_complete(receiver.drain())
    transitions = [event["data"]["transition"] for event in kafka.stored]
    assert transitions == ["raised", "cleared", "raised", "cleared"]


POISONED_MARKER = "1.3.6.1.4.1.9.9.9.9"


class RecursesOnOneObject:
    """The MIBs, except that looking up one object recurses too deep (as pysnmp's lookup
    did on a 1,000-arc OID): a bug no limit foresaw."""

    def __getattr__(self, name: str) -> Any:
        return getattr(MIBS, name)

    def object_name(self, oid: tuple[int, ...]) -> str | None:
        if oid == tuple(int(arc) for arc in POISONED_MARKER.split(".")):
            raise RecursionError("maximum recursion depth exceeded")
        return MIBS.object_name(oid)


def rejected(reason: str) -> float:
    labels = {"source": "snmp", "outcome": "rejected", "reason": reason}
    return REGISTRY.get_sample_value("ticketing_events_ingested_total", labels) or 0.0


def test_poisoned_traps_are_refused_or_dead_lettered_one_by_one_and_their_batch_kept(
    loop: asyncio.AbstractEventLoop,
) -> None:
    kafka = StandInKafka()
    mibs = cast(MibResolver, RecursesOnOneObject())
    receiver = SnmpReceiver(kafka, ReceiverPolicy(("public",), ()), mibs, EMPTY_DEVICES,
                            SystemClock())  # fmt: skip
    loop.run_until_complete(receiver.start("127.0.0.1", 0, 1 << 22))
    long_oid = "1.3.6.1.4.1.9." + ".".join(["1"] * 1000)
    poisoned = [
        encoded_link_trap("public", 7, 1001, markers=((long_oid, "deep"),)),
        encoded_link_trap("public", 8, 1002, markers=((POISONED_MARKER, "x"),)),
    ]
    before = rejected("oid_limit")

    async def scenario() -> None:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for n in range(40):
            sender.sendto(encoded_link(n % 5 + 1, n + 1), receiver.address)
            if n in (10, 20):
                sender.sendto(poisoned[n // 20], receiver.address)
        sender.close()
        for _ in range(100):
            if len(kafka.audit) >= 40 and kafka.topics.get(DEAD_LETTERS):
                break
            await asyncio.sleep(0.05)

    try:
        loop.run_until_complete(scenario())
    finally:
        receiver.stop()
        loop.run_until_complete(receiver.drain())
    assert len(kafka.audit) == 40  # every valid trap, whatever batch it shared
    assert rejected("oid_limit") == before + 1
    [letter] = kafka.topics[DEAD_LETTERS]
    assert "RecursionError" in letter["data"]["reason"]
