"""The e-mail corpus (issue 4, point 7): hand-written support mail through real clients.

Every mail in ``tests/corpus/mail`` is sent, in the order of ``cases.yaml`` (replies name
earlier mails), to one running ``engine up`` with the example customer directory, by
``smtplib`` or by ``swaks``. Each case then checks what a support engineer expects: the
SMTP reply, the ``email.received`` event (automated reason, new text, attachments,
forward), the ticket state after that mail (priority, tier, category, customer, how many
mails it holds) or the dead letter. A case the engine gets wrong today carries a
``known_gap`` and is a strict xfail, so its fix shows up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from engine.contract import Priority, SpecialRoute, Tier
from engine.contract.identity import event_id
from engine.contract.topics import (
    DEAD_LETTERS,
    TICKET_ACTIVITY,
    TICKET_EVENTS,
    TICKET_STATE,
    named,
)
from engine.ingest.mail.archive import archive_path
from engine.settings import Settings
from tests.integration.harness import (
    PROJECT_ROOT,
    EngineProcess,
    engine_env,
    wait_until,
)

CORPUS = PROJECT_ROOT / "tests" / "corpus" / "mail"
CUSTOMERS = PROJECT_ROOT / "deploy" / "customers.example.yaml"
# The engine runs with the default limit (engine_env passes no ENGINE_* of this process).
SIZE_LIMIT = Settings.model_fields["smtp_max_message_bytes"].default
WAIT_SECONDS = 90


class SameAs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    same_as: str


class CorpusCase(BaseModel):
    """One mail of the corpus and its expected outcome (fields explained in cases.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    client: Literal["smtplib", "swaks"]
    mail_from: str
    rcpt_to: str
    declare_size: bool = False
    smtp: Literal[250, 550, 552]
    smtp_stage: Literal["mail", "rcpt", "data"] = "data"
    ticket: Literal["new", "none", "dead_letter"] | SameAs | None = None
    duplicate: bool = False
    priority: Priority | None = None
    tier: Tier | None = None
    category: str | None = None
    customer_id: str | None = None
    special_routes: tuple[SpecialRoute, ...] = ()
    forwarded_from: str | None = None
    attachments: int | None = Field(default=None, ge=0)
    from_name: str | None = None
    subject_contains: str | None = None
    automated_reason_contains: str | None = None
    new_text_contains: tuple[str, ...] = ()
    new_text_excludes: tuple[str, ...] = ()
    known_gap: str | None = None

    @property
    def id(self) -> str:
        return Path(self.file).stem.split("-", 1)[1]

    @property
    def opens_or_joins(self) -> bool:
        return self.ticket == "new" or isinstance(self.ticket, SameAs)


def load_cases() -> list[CorpusCase]:
    document = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
    defaults = document["defaults"]
    cases = [CorpusCase.model_validate({**defaults, **entry}) for entry in document["cases"]]
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids), "case ids (file names without their number) must be unique"
    for index, case in enumerate(cases):
        if isinstance(case.ticket, SameAs):
            assert case.ticket.same_as in ids[:index], f"{case.id}: same_as names no earlier case"
    return cases


CASES = load_cases()
BY_ID = {case.id: case for case in CASES}


def expected_event_counts(cases: list[CorpusCase]) -> dict[str, int]:
    """How many mails each ticket holds after each case: new opens with 1, every joining
    mail adds one, a redelivery adds none."""
    root: dict[str, str] = {}
    held: dict[str, int] = {}
    after: dict[str, int] = {}
    for case in cases:
        if case.ticket == "new":
            root[case.id] = case.id
            held[case.id] = 1
        elif isinstance(case.ticket, SameAs):
            root[case.id] = root[case.ticket.same_as]
            held[root[case.id]] += 0 if case.duplicate else 1
        else:
            continue
        after[case.id] = held[root[case.id]]
    return after


EVENT_COUNTS = expected_event_counts(CASES)


# --- sending ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    stage: str
    code: int
    text: str


@dataclass(frozen=True)
class Sent:
    case: CorpusCase
    data: bytes
    message_id: str | None
    reply: Reply

    @property
    def ticket_id(self) -> str:
        """The 250 reply names the ticket: '2.0.0 Accepted for ticket T-...'."""
        assert "ticket T-" in self.reply.text, self.reply
        return self.reply.text.rsplit(" ", 1)[-1]

    @property
    def ticket_for_replies(self) -> str:
        """The ticket a later mail names; a well-formed id of no ticket when this mail
        opened none (the reply then fails on its own, not the whole corpus)."""
        return self.ticket_id if "ticket T-" in self.reply.text else "T-NOTICKETOPENE"


_PLACEHOLDER = re.compile(rb"\{\{(\w+)(?::([\w.-]+))?\}\}")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)


def message_id_of(raw: bytes) -> str | None:
    headers = raw.split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(headers)
    return found.group(1).decode() if found else None


def base64_lines(size: int) -> bytes:
    """``size`` reproducible bytes as base64, 76 characters a line (as mailers write it)."""
    encoded = base64.b64encode(random.Random(size).randbytes(size))
    return b"\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def received_chain(hops: int) -> bytes:
    """The Received fields a mail gathers going round a loop between two relays."""
    relays = ("relay-a.globex.example", "relay-b.globex.example")
    return b"\n".join(
        f"Received: from {relays[hop % 2]} by {relays[(hop + 1) % 2]} with ESMTP id L{hop:05d};"
        f" Fri, 20 Nov 2026 10:4{hop % 10}:00 -0500".encode()
        for hop in range(hops)
    )


def expand(raw: bytes, sent: dict[str, Sent]) -> bytes:
    def substitute(found: re.Match[bytes]) -> bytes:
        name, argument = found.group(1).decode(), (found.group(2) or b"").decode()
        if name == "tag":
            return f"[#{sent[argument].ticket_for_replies}]".encode()
        if name == "ticket":
            return sent[argument].ticket_for_replies.encode()
        if name == "message_id":
            source = (CORPUS / BY_ID[argument].file).read_bytes()
            return f"<{message_id_of(source)}>".encode()
        if name == "base64_bytes":
            return base64_lines(int(argument))
        if name == "base64_over_limit":
            return base64_lines(SIZE_LIMIT)  # base64 makes it a third larger still
        if name == "received_headers":
            return received_chain(int(argument))
        raise AssertionError(f"unknown placeholder {found.group(0)!r}")

    return _PLACEHOLDER.sub(substitute, raw)


def with_crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def send_with_smtplib(port: int, case: CorpusCase, data: bytes) -> Reply:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("corpus.test")
        options = [f"SIZE={len(data)}"] if case.declare_size else []
        code, text = client.mail(case.mail_from, options)
        if code != 250:
            return Reply("mail", code, text.decode(errors="replace"))
        code, text = client.rcpt(case.rcpt_to)
        if code != 250:
            return Reply("rcpt", code, text.decode(errors="replace"))
        code, text = client.data(data)
        return Reply("data", code, text.decode(errors="replace"))


def send_with_swaks(port: int, case: CorpusCase, data: bytes, folder: Path) -> Reply:
    path = folder / case.file
    path.write_bytes(data)
    run = subprocess.run(
        [
            "swaks", "--server", f"127.0.0.1:{port}", "--helo", "corpus.test",
            "--from", case.mail_from, "--to", case.rcpt_to,
            "--data", f"@{path}", "--suppress-data", "--timeout", "120",
        ],
        capture_output=True, text=True, errors="replace", timeout=300, check=False,
    )  # fmt: skip
    return swaks_reply(run.stdout + run.stderr)


def swaks_reply(transcript: str) -> Reply:
    """The reply that decided the transaction, from swaks' transcript: the first refusal
    of MAIL or RCPT, else the reply after the data was sent."""
    stage = ""
    for line in transcript.splitlines():
        if line.startswith(" -> "):
            command = line[4:].upper()
            if command.startswith("MAIL FROM"):
                stage = "mail"
            elif command.startswith("RCPT TO"):
                stage = "rcpt"
        elif line.startswith(("<-  ", "<** ")) and stage:
            code, text = int(line[4:7]), line[8:]
            if code == 354:
                stage = "data"
            elif code >= 400 or stage == "data":
                return Reply(stage, code, text)
    raise AssertionError(f"no decisive reply in swaks' transcript:\n{transcript[-3000:]}")


# --- reading the topics ------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]


class Feed:
    """Every record of a topic so far, with its partition and offset."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[Record] = []
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
        )
        partitions = [
            TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or ()
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_beginning(*partitions)

    def matching(self, predicate: Callable[[Record], bool]) -> list[Record]:
        for batch in self._consumer.poll(timeout_ms=300).values():
            for record in batch:
                key = record.key.decode() if record.key else None
                self.records.append(
                    Record(record.partition, record.offset, key, json.loads(record.value))
                )
        return [record for record in self.records if predicate(record)]

    def wait_for(self, predicate: Callable[[Record], bool], what: str, nth: int = 1) -> Record:
        """The ``nth`` record matching (1: the first), once there is one."""
        found: list[Record] = wait_until(
            lambda: self.matching(predicate)[nth - 1 :], WAIT_SECONDS, what
        )
        return found[0]

    def close(self) -> None:
        self._consumer.close()


@dataclass
class Corpus:
    engine: EngineProcess
    bootstrap: str
    topic_prefix: str
    archive: Path
    sent: dict[str, Sent]
    events: Feed
    states: Feed
    letters: Feed
    activity: Feed

    def processed(self, record: Record) -> bool:
        """The processor committed past this ticket event (it commits after its effects)."""
        group = self.topic_prefix + self.engine.env["ENGINE_APP_ID"]  # as Settings prefixes it
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
        finally:
            admin.close()
        committed = offsets.get(
            TopicPartition(named(TICKET_EVENTS, self.topic_prefix), record.partition)
        )
        return committed is not None and committed.offset > record.offset


@pytest.fixture(scope="module")
def corpus(
    topics: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    """One engine with the example customer directory, on the module's own topics; every
    mail sent, in order."""
    state = tmp_path_factory.mktemp("corpus-engine")
    settings = {
        "ENGINE_CUSTOMERS_FILE": str(CUSTOMERS),
        "ENGINE_SMTP_ARCHIVE_DIR": str(state / "archive"),
    }
    engine = EngineProcess(
        engine_env(state, topics, topic_prefix, **settings), state / "engine.log"
    )
    engine.start("--bootstrap-servers", topics)
    outbox = tmp_path_factory.mktemp("corpus-swaks")
    sent: dict[str, Sent] = {}
    feeds = [
        Feed(topics, named(topic, topic_prefix))
        for topic in (TICKET_EVENTS, TICKET_STATE, DEAD_LETTERS, TICKET_ACTIVITY)
    ]
    try:
        for case in CASES:
            raw = (CORPUS / case.file).read_bytes()
            data = with_crlf(expand(raw, sent))
            if case.client == "smtplib":
                reply = send_with_smtplib(engine.smtp_port, case, data)
            else:
                reply = send_with_swaks(engine.smtp_port, case, data, outbox)
            sent[case.id] = Sent(case, data, message_id_of(raw), reply)
        yield Corpus(engine, topics, topic_prefix, state / "archive", sent, *feeds)
    finally:
        for feed in feeds:
            feed.close()
        engine.stop()


def deliveries(case: CorpusCase, message_id: str | None) -> int:
    """How many mails up to this case carry its Message-ID (redeliveries repeat it)."""
    upto = CASES[: CASES.index(case) + 1]
    return sum(
        1 for other in upto if message_id_of((CORPUS / other.file).read_bytes()) == message_id
    )


# --- the checks ----------------------------------------------------------------------------


def corpus_params() -> list[Any]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=case.known_gap)]
            if case.known_gap
            else [],
        )
        for case in CASES
    ]


@pytest.mark.parametrize("case", corpus_params())
def test_corpus_mail(case: CorpusCase, corpus: Corpus) -> None:
    sent = corpus.sent[case.id]
    reply = sent.reply
    assert (reply.stage, reply.code) == (case.smtp_stage, case.smtp), reply
    if case.smtp != 250:
        check_not_stored(corpus, sent)
        return
    if case.ticket == "dead_letter":
        check_dead_letter(corpus, sent)
        return
    ticket = sent.ticket_id
    event = corpus.events.wait_for(
        lambda r: r.key == ticket and r.value["data"]["message_id"] == sent.message_id,
        f"the email.received event of {case.file} on {TICKET_EVENTS}",
        nth=deliveries(case, sent.message_id),  # a redelivery's event follows the first
    )
    check_event(case, event.value["data"])
    check_archived(corpus, sent, event.value["data"])
    if case.ticket == "none":
        check_no_ticket(corpus, event)
        return
    check_identity(case, corpus, ticket)
    check_ticket(case, corpus, event)


def check_dead_letter(corpus: Corpus, sent: Sent) -> None:
    """Accepted (the mail is spooled under a ticket), then kept whole as a dead letter by
    the mail parser: no event, no ticket."""
    assert sent.ticket_id
    assert dead_letter_of(corpus, sent)["reason"]


def dead_letter_of(corpus: Corpus, sent: Sent) -> dict[str, Any]:
    """The dead letter holding this mail whole."""
    letter = corpus.letters.wait_for(
        lambda r: (
            r.value["data"]["origin"] == "smtp"
            and base64.b64decode(r.value["data"]["payload_base64"]).rstrip() == sent.data.rstrip()
        ),
        "the mail kept whole on the dead letter topic",
    )
    return letter.value["data"]  # type: ignore[no-any-return]


def check_not_stored(corpus: Corpus, sent: Sent) -> None:
    """A refused mail stays with its sender: nothing of it is on the ticket events."""
    if sent.message_id is not None:
        stored = corpus.events.matching(
            lambda r: r.value["data"].get("message_id") == sent.message_id
        )
        assert stored == [], "a refused mail was stored"


def check_archived(corpus: Corpus, sent: Sent, data: dict[str, Any]) -> None:
    """The whole mail, attachments included, is in the archive the event names."""
    digest = data["archived_sha256"]
    assert digest, "an accepted mail was not archived"
    kept = archive_path(corpus.archive, digest).read_bytes()
    assert hashlib.sha256(kept).hexdigest() == digest
    assert kept.rstrip() == sent.data.rstrip(), "the archive does not hold the mail as sent"


def check_event(case: CorpusCase, data: dict[str, Any]) -> None:
    reason = data["automated_reason"]
    if case.ticket == "none":
        assert reason, "an automated mail must say why it is automated"
        if case.automated_reason_contains:
            assert case.automated_reason_contains.lower() in reason.lower(), reason
    else:
        assert reason is None, f"a person's mail taken for an automated one: {reason}"
    new_text = " ".join(data["new_text"].split())  # phrases may wrap across lines
    for phrase in case.new_text_contains:
        assert phrase in new_text, f"{phrase!r} not in new_text:\n{data['new_text']}"
    for phrase in case.new_text_excludes:
        assert phrase not in new_text, f"{phrase!r} in new_text:\n{data['new_text']}"
    if case.attachments is not None:
        assert len(data["attachments"]) == case.attachments, data["attachments"]
    if case.forwarded_from is not None:
        assert data["forwarded"] is not None, "the forwarded original was not recognised"
        assert data["forwarded"]["from_address"] == case.forwarded_from, data["forwarded"]
    if case.from_name is not None:
        assert data["from_name"] == case.from_name
    if case.subject_contains is not None:
        assert case.subject_contains in data["subject"], data["subject"]


def check_no_ticket(corpus: Corpus, event: Record) -> None:
    wait_until(
        lambda: corpus.processed(event), WAIT_SECONDS, "the processor to pass the automated mail"
    )
    mail_event = event.value["event_id"]
    touched = corpus.states.matching(
        lambda r: mail_event in r.value["data"]["ticket"]["recent_event_ids"]
    )
    assert touched == [], "an automated mail opened or updated a ticket"


def check_identity(case: CorpusCase, corpus: Corpus, ticket: str) -> None:
    earlier = {
        other_id: other.ticket_id
        for other_id, other in corpus.sent.items()
        if CASES.index(other.case) < CASES.index(case)
        and other.case.opens_or_joins
        and "ticket T-" in other.reply.text  # an earlier case's own failure is its own
    }
    if isinstance(case.ticket, SameAs):
        assert case.ticket.same_as in earlier, "the mail it answers opened no ticket"
        assert ticket == earlier[case.ticket.same_as], "the mail did not join its ticket"
    else:
        joined = [other for other, their_ticket in earlier.items() if their_ticket == ticket]
        assert joined == [], f"a new matter joined the ticket of {joined}"


def check_ticket(case: CorpusCase, corpus: Corpus, event: Record) -> None:
    ticket, mail_event = event.key, event.value["event_id"]
    if case.duplicate:
        wait_until(
            lambda: corpus.processed(event), WAIT_SECONDS, "the processor to pass the redelivery"
        )
        state = corpus.states.matching(lambda r: r.key == ticket)[-1]
    else:
        state = corpus.states.wait_for(
            lambda r: (
                r.key == ticket
                and r.value["data"]["ticket"]["recent_event_ids"][-1:] == [mail_event]
            ),
            f"the state of {ticket} after {case.file} on {TICKET_STATE}",
        )
    found = state.value["data"]["ticket"]
    expected: dict[str, Any] = {"event_count": EVENT_COUNTS[case.id]}
    for name in ("priority", "tier", "category", "customer_id"):
        if name in case.model_fields_set:
            expected[name] = getattr(case, name)
    assert {name: found[name] for name in expected} == expected, found["subject"]
    missing = set(case.special_routes) - set(found["special_routes"])
    assert not missing, f"special routes {sorted(missing)} not taken: {found['special_routes']}"
    if not case.duplicate:
        check_reply_activity(case, corpus, event)


def check_reply_activity(case: CorpusCase, corpus: Corpus, event: Record) -> None:
    """A mail joining its ticket is the customer's reply on the activity feed; a new
    ticket's first mail is not."""
    reply_id = event_id("ticket.activity", event.value["event_id"])
    if isinstance(case.ticket, SameAs):
        reply = corpus.activity.wait_for(
            lambda r: r.value["event_id"] == reply_id, f"the customer's reply on {TICKET_ACTIVITY}"
        )
        assert reply.key == event.key
        assert reply.value["data"]["activity"] == "customer_replied"
        assert reply.value["data"]["ticket"]["last_customer_contact_at"] is not None
    else:
        wait_until(lambda: corpus.processed(event), WAIT_SECONDS, "the processor to pass the mail")
        assert corpus.activity.matching(lambda r: r.value["event_id"] == reply_id) == []
