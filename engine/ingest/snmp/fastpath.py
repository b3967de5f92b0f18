"""A fast path for SNMPv2c traps and INFORMs, the bulk of a trap storm.

pysnmp decodes every message with pyasn1, three passes of generic BER machinery that cost
about 0.25 ms a trap here: three quarters of the receiver's CPU. A v2c notification is a
small fixed structure (RFC 3416: version, community, Trap or InformRequest PDU with
request id and varbinds), so this module reads it directly and, for an INFORM, builds
the Response from the same bytes. Anything else, or anything it does not fully
understand (v1, v3, other PDUs, a length or tag it does not expect), returns None and
the message takes pysnmp's path, which also counts it if it is malformed. An OID past
SMI's limits (``MAX_OID_ARCS`` arcs, each at most ``MAX_ARC``) raises ``LimitError``: the
receiver counts it refused, before any MIB lookup (which recurses once per arc) or
conversion of an arc to text (Python refuses an int of over 4,300 digits) sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import EngineError

SNMP_V2C = 1
TRAP_PDU = 0xA7
INFORM_PDU = 0xA6
RESPONSE_PDU = 0xA2
_SEQUENCE, _INTEGER, _OCTETS, _NULL, _OID = 0x30, 0x02, 0x04, 0x05, 0x06
# RFC 2578 3.5: at most 128 sub-identifiers, each at most 2^32-1.
MAX_OID_ARCS = 128
MAX_ARC = 2**32 - 1


class BerError(EngineError):
    """Not the v2c notification this module reads: let pysnmp decide."""


class LimitError(BerError):
    """A notification past a limit of SNMP's (an OID's arcs): refused, not pysnmp's to
    read either."""


@dataclass(frozen=True)
class Decoded:
    """A varbind value read by the fast path: its SNMP type name and plain value."""

    syntax: str
    value: str | int | None


@dataclass(frozen=True)
class V2cNotification:
    community: bytes
    inform: bool
    request_id: int
    varbinds: list[tuple[tuple[int, ...], Decoded]]
    pdu: bytes
    """The PDU's encoding without the community: what a dead letter keeps."""
    varbind_list: bytes
    """The encoded varbind list, echoed in an INFORM's Response."""


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the TLV at ``pos``."""
    if pos + 2 > end:
        raise BerError("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        octets = length & 0x7F
        if not 1 <= octets <= 3 or pos + octets > end:
            raise BerError("bad length")
        length = int.from_bytes(data[pos : pos + octets], "big")
        pos += octets
    if pos + length > end:
        raise BerError("truncated")
    return tag, pos, pos + length


def _integer(data: bytes, start: int, end: int, bits: int = 32) -> int:
    """A BER integer that must fit ``bits`` signed bits (Integer32 and request ids)."""
    if not 1 <= end - start <= 9:
        raise BerError("bad integer")
    value = int.from_bytes(data[start:end], "big", signed=True)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise BerError(f"an integer outside {bits} bits")
    return value


def _unsigned(data: bytes, start: int, end: int, bits: int) -> int:
    """A Counter32, Gauge32, TimeTicks (32 bits) or Counter64 (64 bits): a BER integer, so
    one of 2^31 or more has a leading zero octet, and a negative one is out of range."""
    value = int.from_bytes(data[start:end], "big", signed=True) if end > start else -1
    if not 0 <= value < 2**bits:
        raise BerError(f"an unsigned value outside {bits} bits")
    return value


def _oid(data: bytes, start: int, end: int) -> tuple[int, ...]:
    if start == end or data[start] & 0x80:
        raise BerError("empty OID, or a first arc this reader does not handle")
    first = data[start]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in data[start + 1 : end]:
        if byte == 0x80 and value == 0:
            raise BerError("an OID arc padded with a leading zero group")
        value = (value << 7) | (byte & 0x7F)
        if value > MAX_ARC:
            raise LimitError(f"an OID arc over {MAX_ARC}")
        if not byte & 0x80:
            parts.append(value)
            value = 0
            if len(parts) > MAX_OID_ARCS:
                raise LimitError(f"an OID of over {MAX_OID_ARCS} arcs")
    if data[end - 1] & 0x80:
        raise BerError("bad OID")
    return tuple(parts)


def _text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    return text if all(ch.isprintable() or ch in "\r\n\t" for ch in text) else "0x" + raw.hex()


_UNSIGNED = {0x41: "Counter32", 0x42: "Gauge32", 0x43: "TimeTicks", 0x46: "Counter64"}
_EXCEPTIONS = {0x80: "NoSuchObject", 0x81: "NoSuchInstance", 0x82: "EndOfMibView"}


def _value(data: bytes, tag: int, start: int, end: int) -> Decoded:
    raw = data[start:end]
    if tag == _INTEGER:
        return Decoded("Integer32", _integer(data, start, end))
    if tag == _OCTETS:
        return Decoded("OctetString", _text(raw))
    if tag == _OID:
        return Decoded("ObjectIdentifier", ".".join(map(str, _oid(data, start, end))))
    if tag == 0x40 and len(raw) == 4:
        return Decoded("IpAddress", ".".join(str(octet) for octet in raw))
    if tag in _UNSIGNED and 1 <= len(raw) <= 9:
        bits = 64 if _UNSIGNED[tag] == "Counter64" else 32
        return Decoded(_UNSIGNED[tag], _unsigned(data, start, end, bits))
    if tag == 0x44:
        return Decoded("Opaque", "0x" + raw.hex())
    if tag == _NULL and not raw:
        return Decoded("Null", None)
    if tag in _EXCEPTIONS and not raw:
        return Decoded(_EXCEPTIONS[tag], None)
    raise BerError(f"value tag {tag:#x}")


def parse_v2c_notification(data: bytes) -> V2cNotification | None:
    """The v2c Trap or InformRequest in ``data``; None for any other message. Raises
    LimitError for one past SNMP's limits."""
    try:
        return _parse(data)
    except LimitError:
        raise
    except (BerError, IndexError, ValueError):
        return None


def _expect(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _header(data, pos, end)
    if found != tag:
        raise BerError(f"expected tag {tag:#x}")
    return start, stop


def _parse(data: bytes) -> V2cNotification | None:
    start, end = _expect(data, 0, len(data), _SEQUENCE)
    if end != len(data):
        return None
    version_start, pos = _expect(data, start, end, _INTEGER)
    if _integer(data, version_start, pos, bits=64) != SNMP_V2C:
        return None
    community_start, pos = _expect(data, pos, end, _OCTETS)
    community = data[community_start:pos]
    pdu_at = pos
    pdu_tag, pdu_start, pdu_end = _header(data, pos, end)
    if pdu_tag not in (TRAP_PDU, INFORM_PDU) or pdu_end != end:
        return None
    field_start, pos = _expect(data, pdu_start, pdu_end, _INTEGER)
    request_id = _integer(data, field_start, pos)
    for _ in range(2):  # error-status and error-index: zero in notifications
        _, pos = _expect(data, pos, pdu_end, _INTEGER)
    list_at = pos
    list_start, list_end = _expect(data, pos, pdu_end, _SEQUENCE)
    if list_end != pdu_end:
        raise BerError("data after the varbinds")
    varbinds = []
    pos = list_start
    while pos < list_end:
        bind_start, bind_end = _expect(data, pos, list_end, _SEQUENCE)
        oid_start, oid_end = _expect(data, bind_start, bind_end, _OID)
        tag, value_start, value_end = _header(data, oid_end, bind_end)
        if value_end != bind_end:
            raise BerError("data after a value")
        varbinds.append((_oid(data, oid_start, oid_end), _value(data, tag, value_start, value_end)))
        pos = bind_end
    return V2cNotification(
        community=community,
        inform=pdu_tag == INFORM_PDU,
        request_id=request_id,
        varbinds=varbinds,
        pdu=data[pdu_at:pdu_end],
        varbind_list=data[list_at:list_end],
    )


def _tlv(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes((tag, length)) + value
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + value


def _encode_integer(value: int) -> bytes:
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return _tlv(_INTEGER, value.to_bytes(size, "big", signed=True))


def inform_response(notification: V2cNotification) -> bytes:
    """The Response to a v2c INFORM: same request id, no error, the varbinds echoed."""
    pdu = _tlv(
        RESPONSE_PDU,
        _encode_integer(notification.request_id)
        + _encode_integer(0)
        + _encode_integer(0)
        + notification.varbind_list,
    )
    return _tlv(
        _SEQUENCE,
        _encode_integer(SNMP_V2C) + _tlv(_OCTETS, notification.community) + pdu,
    )
