"""``classify`` on any text."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from engine.contract import Channel, TicketMessage
from engine.ingest.mail.parse import EmailParseError
from engine.rules.classify import classify
from engine.rules.ruleset import RuleSet, load_ruleset
from tests.fuzz.targets import Target, corpus_files
from tests.fuzz.targets.mail import parsed


@functools.cache
def _ruleset() -> RuleSet:
    return load_ruleset()


def classify_text(data: bytes) -> None:
    """``classify`` with the shipped rule set, the text's first line the subject and the
    rest the body: never raises."""
    text = data.decode("utf-8", "replace")
    subject, _, body = text.partition("\n")
    message = TicketMessage(channel=Channel.EMAIL, subject=subject, body=body)
    classify(message, _ruleset())


def mail_texts() -> Iterator[bytes]:
    """The subject and text of each corpus mail the parser reads."""
    for raw in corpus_files("mail", "*.eml"):
        try:
            event = parsed(raw)
        except EmailParseError:
            continue
        yield f"{event.data.subject}\n{event.data.text}".encode()


TOKENS = (
    "ﬃ".encode(), "ǆ".encode(), "\u0344".encode(), "ﷺ".encode(), "½".encode(), b"\x00",
    b"\x1b[2J", "\u202e".encode(), b"caida", "caída".encode(), b"P1", b"urgente", b"down",
    b"no entran llamadas", b"all users", b"todos", b"version 3.", b"v16.2", b"<script",
    b";", b"(", b")", b"*", b"\\", b"\n",
)  # fmt: skip
TARGETS = {
    "classify": Target(
        "classify", classify_text, "none: never raises", mail_texts, 32 * 1024, TOKENS
    ),
}
