"""E-mail addresses of the people a ticket concerns: which may be written to, and one of
each. Pure."""

from __future__ import annotations

from collections.abc import Iterable

MAIL_SYSTEM_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply"}
)


def normal_address(address: str) -> str:
    return address.strip().lower()


def may_receive_mail(address: str) -> bool:
    """Never write to an empty address, a mail system (no loops with bounces), or a text
    that is not one address (white space, control characters, separators)."""
    local, at, domain = normal_address(address).rpartition("@")
    return (
        bool(at and local and domain)
        and local not in MAIL_SYSTEM_LOCAL_PARTS
        and not any(
            character.isspace() or not character.isprintable() or character in '<>,;"'
            for character in local + domain
        )
    )


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
