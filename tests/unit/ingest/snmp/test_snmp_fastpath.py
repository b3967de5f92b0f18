"""The v2c fast path reads exactly what pysnmp reads, answers INFORMs as pysnmp would,
and hands everything else to pysnmp."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.proto import api

from engine.ingest.snmp.fastpath import LimitError, inform_response, parse_v2c_notification
from engine.ingest.snmp.pysnmp_adapter import FastPathTransport, new_engine, udp_socket
from engine.ingest.snmp.trap_event import typed_value

V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
V1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
VALUES = [
    ("1.3.6.1.2.1.1.3.0", V2C.TimeTicks(4294967295)),
    ("1.3.6.1.6.3.1.1.4.1.0", V2C.ObjectIdentifier("1.3.6.1.6.3.1.1.5.3")),
    ("1.3.6.1.2.1.2.2.1.1.3", V2C.Integer(3)),
    ("1.3.6.1.4.1.9.1", V2C.Integer(-129)),
    ("1.3.6.1.4.1.9.2", V2C.Integer(2147483647)),
    ("1.3.6.1.4.1.9.3", V2C.OctetString("Caída de E1".encode())),
    ("1.3.6.1.4.1.9.4", V2C.OctetString(b"\x00\xff\x10")),
    ("1.3.6.1.4.1.9.5", V2C.IpAddress("192.0.2.254")),
    ("1.3.6.1.4.1.9.6", V2C.Counter32(4294967295)),
    ("1.3.6.1.4.1.9.7", V2C.Gauge32(128)),
    ("1.3.6.1.4.1.9.8", V2C.Counter64(2**64 - 1)),
    ("1.3.6.1.4.1.9.9", V2C.Null("")),
    ("1.3.6.1.4.1.9.10", V2C.ObjectIdentifier("1.3.6.1.4.1.99999.4294967295.0")),
    ("1.3.6.1.4.1.9.11", V2C.OctetString(b"x" * 300)),  # long form length
]


def message(pdu_type: type, community: str = "public", request_id: int = 42) -> bytes:
    pdu = pdu_type()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, request_id)
    V2C.apiPDU.set_varbinds(pdu, VALUES)
    msg = V2C.Message()
    V2C.apiMessage.set_defaults(msg)
    V2C.apiMessage.set_community(msg, community)
    V2C.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


@pytest.mark.parametrize("request_id", [0, 42, -7, 2147483647])
def test_a_v2c_trap_reads_as_pysnmp_reads_it(request_id: int) -> None:
    parsed = parse_v2c_notification(message(V2C.SNMPv2TrapPDU, request_id=request_id))

    assert parsed is not None and not parsed.inform
    assert (parsed.community, parsed.request_id) == (b"public", request_id)
    expected = [(tuple(int(p) for p in oid.split(".")), typed_value(v)) for oid, v in VALUES]
    assert [(oid, typed_value(value)) for oid, value in parsed.varbinds] == expected


def test_an_inform_gets_the_response_pysnmp_would_send() -> None:
    raw = message(V2C.InformRequestPDU, community="c0mm", request_id=300)
    parsed = parse_v2c_notification(raw)
    assert parsed is not None and parsed.inform

    response, _ = decoder.decode(inform_response(parsed), asn1Spec=V2C.Message())

    pdu = V2C.apiMessage.get_pdu(response)
    assert pdu.tagSet == V2C.GetResponsePDU.tagSet
    assert str(V2C.apiMessage.get_community(response)) == "c0mm"
    assert int(V2C.apiPDU.get_request_id(pdu)) == 300
    assert int(V2C.apiPDU.get_error_status(pdu)) == 0
    assert len(V2C.apiPDU.get_varbinds(pdu)) == len(VALUES)


def v1_trap() -> bytes:
    pdu = V1.TrapPDU()
    V1.apiTrapPDU.set_defaults(pdu)
    msg = V1.Message()
    V1.apiMessage.set_defaults(msg)
    V1.apiMessage.set_community(msg, "public")
    V1.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


@pytest.mark.parametrize(
    "raw",
    [
        v1_trap(),  # v1: pysnmp converts it (RFC 3584)
        message(V2C.GetRequestPDU),  # not a notification
        message(V2C.SNMPv2TrapPDU)[:-3],  # truncated
        message(V2C.SNMPv2TrapPDU) + b"\x00",  # trailing bytes
        b"\x30\x84\xff\xff\xff\xff",  # absurd length
        b"",
        b"\x30\x03\x02\x01\x03",  # v3 header
    ],
)
def test_anything_else_is_left_to_pysnmp(raw: bytes) -> None:
    assert parse_v2c_notification(raw) is None


LONG_OID = "1.3.6.1.4.1.9." + ".".join(["1"] * 1000)


@pytest.mark.parametrize(
    "varbind",
    [
        (LONG_OID, V2C.Integer(1)),  # RecursionError in a MIB lookup, once decoded
        ("1.3.6.1.4.1.9.1", V2C.ObjectIdentifier(LONG_OID)),
        ("1.3.6.1.4.1.9.1", V2C.ObjectIdentifier((1, 3, 6, 1, 4, 1, 10**5000))),  # 5,001 digits
        (f"1.3.6.1.4.1.9.{2**32}", V2C.Integer(1)),
    ],
)
def test_an_oid_past_smi_limits_is_refused_before_anything_reads_it(varbind: Any) -> None:
    pdu = V2C.SNMPv2TrapPDU()
    V2C.apiTrapPDU.set_defaults(pdu)
    V2C.apiPDU.set_varbinds(pdu, [VALUES[1], varbind])
    msg = V2C.Message()
    V2C.apiMessage.set_defaults(msg)
    V2C.apiMessage.set_community(msg, "public")
    V2C.apiMessage.set_pdu(msg, pdu)

    with pytest.raises(LimitError):
        parse_v2c_notification(bytes(encoder.encode(msg)))


def test_whatever_a_decoder_raises_for_one_datagram_is_counted_not_raised() -> None:
    failures: list[Exception] = []

    def fast_path(datagram: bytes, address: Any, transport: Any) -> bool:
        raise RecursionError("deep")

    async def receive() -> None:  # pysnmp's transport wants a running loop
        FastPathTransport(fast_path, failures.append).datagram_received(b"x", ("127.0.0.1", 9))

    asyncio.run(receive())

    assert [type(error) for error in failures] == [RecursionError]


def _tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 0x80
    return bytes((tag, len(value))) + value


def _trap(request_id: bytes, oid: bytes, value: bytes) -> bytes:
    """A v2c trap of one varbind, its request id, OID and value given as BER octets."""
    varbinds = _tlv(0x30, _tlv(0x30, _tlv(0x06, oid) + value))
    pdu = _tlv(0xA7, _tlv(0x02, request_id) + _tlv(0x02, b"\0") + _tlv(0x02, b"\0") + varbinds)
    return _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, b"public") + pdu)


SYS_UPTIME = bytes.fromhex("2b06010201010300")  # 1.3.6.1.2.1.1.3.0


def test_the_hand_made_trap_is_read() -> None:
    parsed = parse_v2c_notification(_trap(b"\x2a", SYS_UPTIME, _tlv(0x43, b"\x00\xff\xff\xff\xff")))
    assert parsed is not None and parsed.request_id == 42
    assert typed_value(parsed.varbinds[0][1]) == typed_value(V2C.TimeTicks(2**32 - 1))


@pytest.mark.parametrize(
    ("request_id", "oid", "value"),
    [
        (b"\x00\x80\x00\x00\x00", SYS_UPTIME, _tlv(0x43, b"\x01")),  # request id 2^31
        (b"\x01" + b"\0" * 8, SYS_UPTIME, _tlv(0x43, b"\x01")),  # a 9-octet request id
        (b"\x2a", SYS_UPTIME, _tlv(0x41, b"\x01\x00\x00\x00\x00")),  # Counter32 2^32
        (b"\x2a", SYS_UPTIME, _tlv(0x42, b"\xff")),  # Gauge32 -1
        (b"\x2a", SYS_UPTIME, _tlv(0x46, b"\x01" + b"\0" * 8)),  # Counter64 2^64
        (b"\x2a", SYS_UPTIME, _tlv(0x02, b"\x00\x80\x00\x00\x00")),  # Integer32 2^31
        (b"\x2a", bytes.fromhex("2b060102010180010300"), _tlv(0x43, b"\x01")),  # padded arc
    ],
)
def test_what_pysnmp_refuses_is_left_to_pysnmp_not_read_and_echoed_by_the_fast_path(
    request_id: bytes, oid: bytes, value: bytes
) -> None:
    assert parse_v2c_notification(_trap(request_id, oid, value)) is None


def test_what_pysnmp_raises_for_a_datagram_is_counted_not_left_to_the_loop() -> None:
    # Found by fuzzing (tests/fuzz/regressions/snmp_pysnmp/): pyasn1 raises TypeError on a
    # primitive encoding of a constructed tag. pysnmp's transport decoded it in a callback
    # of the loop, whose handler logged it as an error, and nothing counted it.
    counted: list[Exception] = []
    unhandled: list[dict[str, Any]] = []

    async def receive() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: unhandled.append(context))
        snmp_engine = new_engine(
            None, udp_socket("127.0.0.1", 0, 65536), lambda *args: False, ("public",), (),
            lambda *args: None, counted.append,
        )  # fmt: skip
        await asyncio.sleep(0)
        transport = snmp_engine.transport_dispatcher.get_transport(udp.DOMAIN_NAME)
        transport.datagram_received(b"\xb0\x00", ("127.0.0.1", 9))
        await asyncio.sleep(0.05)
        snmp_engine.close_dispatcher()

    asyncio.run(receive())

    assert ([type(error) for error in counted], unhandled) == ([TypeError], [])
