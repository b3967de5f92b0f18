"""XFORWARD: a trusted relay (Postfix in front of the engine) tells who its client was.

Postfix's SMTP client sends ``XFORWARD NAME=... ADDR=... PROTO=... HELO=... SOURCE=...``
before each MAIL FROM when the server announces the command (Postfix's XFORWARD_README);
the values are xtext (RFC 3461). The engine announces and accepts it only from the relays
of ENGINE_SMTP_TRUSTED_RELAYS: anyone else could otherwise claim any address and spend
another client's rate limit, or hide behind one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from engine.errors import EngineError

ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
ANNOUNCEMENT = "XFORWARD " + " ".join(ATTRIBUTES)
# What a relay sends when it does not know a value: the attribute is then left unset.
UNKNOWN_VALUES = frozenset({"[UNAVAILABLE]", "[TEMPUNAVAIL]"})
MAX_VALUE_CHARS = 255
_XTEXT_ESCAPE = re.compile(r"\+([0-9A-Fa-f]{2})")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class XforwardError(EngineError):
    """An XFORWARD command that cannot be taken; the message names the bad attribute."""


@dataclass(frozen=True)
class SmtpClient:
    """Who sent a mail: ``address`` is the original client (forwarded by a trusted relay,
    or the connection's own peer), ``relay`` the trusted relay's address when there was one."""

    address: str
    relay: str | None = None


def parse_xforward(argument: str | None) -> dict[str, str]:
    """The attributes of one XFORWARD command, by upper-case name, xtext-decoded; an
    attribute sent as ``[UNAVAILABLE]`` or ``[TEMPUNAVAIL]`` maps to ""."""
    if not argument or not argument.strip():
        raise XforwardError("XFORWARD needs at least one attribute=value")
    attributes: dict[str, str] = {}
    for item in argument.split():
        name, equals, value = item.partition("=")
        name = name.upper()
        if not equals:
            raise XforwardError(f"XFORWARD attribute {name or item!r} has no value")
        if name not in ATTRIBUTES:
            raise XforwardError(f"Bad XFORWARD attribute name: {name}")
        decoded = _xtext_decoded(value)
        if len(decoded) > MAX_VALUE_CHARS:
            raise XforwardError(f"XFORWARD {name} is over {MAX_VALUE_CHARS} characters")
        if not decoded.isprintable():
            raise XforwardError(f"XFORWARD {name} has control characters")
        attributes[name] = "" if decoded.upper() in UNKNOWN_VALUES else decoded
    return attributes


def smtp_client(peer: str, forwarded: dict[str, str]) -> SmtpClient:
    """The original client of a mail received from ``peer`` with these forwarded
    attributes (empty when the peer forwarded nothing, or was not trusted to)."""
    address = _forwarded_address(forwarded.get("ADDR", ""))
    if not address:
        return SmtpClient(peer)
    return SmtpClient(address, relay=peer)


def is_trusted(peer: str, networks: Iterable[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _forwarded_address(value: str) -> str:
    """Postfix writes an IPv6 client as ``IPV6:2001:db8::1``."""
    if value[:5].upper() == "IPV6:":
        return value[5:]
    return value


def _xtext_decoded(value: str) -> str:
    return _XTEXT_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), value)
