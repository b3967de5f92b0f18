"""E-mail addresses of the people a ticket concerns: which may be written to, and one of
each. Pure."""

from __future__ import annotations

from collections.abc import Iterable

MAIL_SYSTEM_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"}
)


def normal_address(address: str) -> str:
    return address.strip().lower()


def is_one_address(address: str) -> bool:
    """A local part and a domain, and no white space, control character or separator that
    could make it several addresses or another header line."""
    local, at, domain = address.strip().rpartition("@")
    return bool(at and local and domain) and not any(
        character.isspace() or not character.isprintable() or character in '<>,;"'
        for character in local + domain
    )


def may_receive_mail(address: str) -> bool:
    """Never write to an empty address, a mail system (no loops with bounces), or a text
    that is not one address (white space, control characters, separators)."""
    local = normal_address(address).rpartition("@")[0]
    return is_one_address(address) and local not in MAIL_SYSTEM_LOCAL_PARTS


def mailable_addresses(addresses: Iterable[str], excluding: Iterable[str] = ()) -> tuple[str, ...]:
    """Each address a person may be written to once, lower-cased, in the order given,
    leaving out mail systems and ``excluding`` (whatever its case)."""
    seen = {normal_address(address) for address in excluding}
    kept: list[str] = []
    for address in map(normal_address, addresses):
        if address not in seen and may_receive_mail(address):
            seen.add(address)
            kept.append(address)
    return tuple(kept)
