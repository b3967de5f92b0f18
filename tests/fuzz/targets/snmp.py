"""SNMP notifications as datagrams: the receiver's v2c fast path and pysnmp's path."""

from __future__ import annotations

import asyncio
import functools
import traceback
from pathlib import Path
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp

import engine
from engine.clock import SystemClock
from engine.contract import to_json
from engine.ingest.snmp.devices import DeviceDirectory, DeviceEntry
from engine.ingest.snmp.mibs import MibResolver
from engine.ingest.snmp.pysnmp_adapter import (
    FastPathTransport,
    Respond,
    new_engine,
    udp_socket,
)
from engine.ingest.snmp.receiver import ReceiverPolicy, SnmpReceiver, over_limit
from engine.ingest.snmp.trap_event import Notification, NotificationError, trap_event
from engine.ingest.snmp.users import SnmpUser
from tests.fuzz.targets import RECEIVED_AT, Target, corpus_files

ENGINE_SOURCE = Path(engine.__file__).resolve().parent
TRAP_SENDER = ("127.0.0.1", 9)  # the discard port: what pysnmp answers goes nowhere
COMMUNITY = "public"
SNMP_USER = SnmpUser.model_validate(
    {"name": "nms", "auth": "SHA256", "auth_key": "auth-secret-1", "priv": "AES",
     "priv_key": "priv-secret-1", "engine_ids": ["8000000001cc000003"]}
)  # fmt: skip


class _SentResponses:
    """The transport an INFORM's response is sent through, standing in for the socket."""

    def __init__(self) -> None:
        self.transport = self
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, address: Any) -> None:
        self.sent.append(data)


@functools.cache
def _mibs() -> MibResolver:
    return MibResolver()


_DEVICES = DeviceDirectory(
    [DeviceEntry(address="127.0.0.0/8", name="pbx-fuzz", customer="acme", role="pbx")]
)


def _make_event(notification: Notification) -> None:
    """What the receiver does with a notification it took: its event (or its refusal,
    ``NotificationError``: a dead letter), written as JSON."""
    try:
        event = trap_event(notification, _mibs(), _DEVICES, RECEIVED_AT, "snmp://fuzz")
    except NotificationError:
        return
    to_json(event)


@functools.cache
def _fast_path_receiver() -> SnmpReceiver:
    policy = ReceiverPolicy(communities=(COMMUNITY,), users=())
    return SnmpReceiver(_NoKafka(), policy, _mibs(), _DEVICES, SystemClock())


class _NoKafka:
    """The receiver's publisher; the targets never store."""

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        raise AssertionError("a fuzz target does not publish")

    async def publish_many(
        self, topic: str, records: list[tuple[bytes | None, bytes]]
    ) -> list[Any]:
        raise AssertionError("a fuzz target does not publish")


def snmp_fast_path(datagram: bytes) -> None:
    """The receiver's v2c fast path on one datagram: it takes it, counts it refused, or
    leaves it to pysnmp, and never raises; each notification it took becomes its event
    (or a ``NotificationError``) and an INFORM's response is sent."""
    receiver = _fast_path_receiver()
    receiver._v2c_fast_path(datagram, TRAP_SENDER, _SentResponses())
    while receiver._waiting:
        received = receiver._waiting.popleft()
        received.pdu()
        if received.respond is not None:
            received.respond()
        _make_event(received.notification)


class _PysnmpPath:
    """pysnmp's path of the receiver: its transport with the fast path turned off, the
    engine's receiver of notifications, v1/v2c community ``public`` and one v3 user."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._unhandled)
        self.counted: list[Exception] = []
        self.unhandled: list[BaseException] = []
        self.taken: list[tuple[Notification, Respond | None]] = []
        self.sock = udp_socket("127.0.0.1", 0, 65536)
        self.transport: FastPathTransport = self.loop.run_until_complete(self._start())

    async def _start(self) -> FastPathTransport:
        snmp_engine = new_engine(
            None,
            self.sock,
            lambda datagram, address, transport: False,
            (COMMUNITY,),
            (SNMP_USER,),
            lambda notification, respond, pdu: self.taken.append((notification, respond)),
            self.counted.append,
        )
        await asyncio.sleep(0)  # the transport's endpoint opens
        transport = snmp_engine.transport_dispatcher.get_transport(udp.DOMAIN_NAME)
        assert isinstance(transport, FastPathTransport)
        return transport

    def _unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.unhandled.append(context.get("exception") or RuntimeError(context["message"]))

    def receive(self, datagram: bytes) -> None:
        self.transport.datagram_received(datagram, TRAP_SENDER)
        self.loop.run_until_complete(asyncio.sleep(0))  # what pysnmp left for the loop


@functools.cache
def _pysnmp_path() -> _PysnmpPath:
    return _PysnmpPath()


class UncountedError(Exception):
    """A datagram made the receiver raise where nothing counts it."""


def _raised_in_engine(error: BaseException) -> bool:
    """Whether the engine's own code raised the error (it is where the error started),
    not pysnmp or pyasn1 reading the datagram, even when called from the engine's adapter
    (rfc2576.v1_to_v2 refusing a v1 trap's generic-trap of 19 is a decoder's refusal)."""
    innermost = traceback.extract_tb(error.__traceback__)[-1]
    return Path(innermost.filename).resolve().is_relative_to(ENGINE_SOURCE)


def snmp_pysnmp(datagram: bytes) -> None:
    """One datagram through pysnmp's path: whatever the decoders raise is handed to the
    receiver's counter (``undecodable``); an error the engine's own code raised, or one
    that reaches the event loop uncounted, is a crash. Each notification pysnmp delivers is
    checked against SNMP's limits and, within them, becomes its event, and an INFORM is
    answered."""
    path = _pysnmp_path()
    path.receive(datagram)
    counted, path.counted[:] = list(path.counted), []
    unhandled, path.unhandled[:] = list(path.unhandled), []
    taken, path.taken[:] = list(path.taken), []
    for error in unhandled:
        raise UncountedError(f"reached the event loop, not counted: {error!r}") from error
    for error in counted:
        if _raised_in_engine(error):
            raise error
    for notification, respond in taken:
        if over_limit(notification) is None:
            _make_event(notification)
            if respond is not None:
                respond()


TOKENS = (
    b"\x30\x82", b"\x30\x84\xff\xff\xff\xff", b"\x02\x01\x01", b"\x02\x01\x00",
    b"\x02\x01\x03", b"\x04\x06public", b"\xa7\x82", b"\xa6", b"\xa4",
    b"\x06\x0a\x2b\x06\x01\x06\x03\x01\x01\x04\x01\x00",  # snmpTrapOID.0
    b"\x06\x08\x2b\x06\x01\x02\x01\x01\x03\x00",  # sysUpTime.0
    b"\x43\x04\xff\xff\xff\xff", b"\x41\x05\x00\xff\xff\xff\xff",
    b"\x46\x09\x01\x00\x00\x00\x00\x00\x00\x00\x00", b"\x40\x04\xc0\x00\x02\x0a",
    b"\x44\x01\x00", b"\x80\x00", b"\x81\x00", b"\x82\x00", b"\x05\x00",
    b"\x06\x81\x80" + b"\x81" * 64, b"\x8f\xff\xff\xff\x7f", b"\x06\x05\x2b\x8f\xff\xff\x7f",
    b"\x02\x09\x01" + b"\x00" * 8,
)  # fmt: skip


TARGETS = {
    "snmp_fast_path": Target(
        "snmp_fast_path", snmp_fast_path, "none: takes, counts refused or leaves to pysnmp; "
        "an event refused by NotificationError (a dead letter)",
        lambda: corpus_files("snmp", "*.ber"), 4096, TOKENS,
    ),
    "snmp_pysnmp": Target(
        "snmp_pysnmp", snmp_pysnmp, "what pysnmp's decoders raise, counted undecodable; "
        "an event refused by NotificationError (a dead letter)",
        lambda: corpus_files("snmp", "*.ber"), 4096, TOKENS,
    ),
}  # fmt: skip
