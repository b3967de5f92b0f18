"""A restarted processor with its table on disk (``ENGINE_PROCESSOR_STORE=rocksdict``,
decision 52): it still knows every ticket written before the restart, and it reads back
only the state records past its local copy, not the whole ``tickets.state.v1``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from engine.contract import EmailReceived, to_json
from engine.contract.topics import TICKET_EVENTS, TICKET_STATE, named
from engine.ingest.mail.parse import parse_email
from engine.rules.ruleset import load_ruleset
from engine.triage.publications import state_record
from engine.triage.triage import triage
from tests.integration.harness import ProcessorProcess, engine_env, support_mail, wait_until

SEEDED = 40
RESTORED = "ticketing_table_rows_restored_total"
OFFSET_KEY = b"__faust\0offset__"


def mail(subject: str, message_id: str, reply_to: str | None = None) -> EmailReceived:
    message = support_mail(subject, "la troncal SIP no registra desde ayer", f"<{message_id}>")
    if reply_to is not None:
        message["In-Reply-To"] = f"<{reply_to}>"
        message["References"] = f"<{reply_to}>"
    return parse_email(
        bytes(message), mail_from="cliente@acme.example",
        rcpt_to=("soporte@support.example.com",), peer="127.0.0.1",
        received_at=datetime.now(UTC), source="test",
    )  # fmt: skip


def seeded_states(count: int) -> list[tuple[str, str, bytes]]:
    """(message id, ticket id, state record) of tickets opened before any processor ran."""
    ruleset = load_ruleset(None)
    seeded = []
    for _ in range(count):
        message_id = f"{uuid.uuid4()}@acme.example"
        event = mail("Troncal", message_id)
        now = datetime.now(UTC)
        outcome = triage(None, event, ruleset, now)
        assert outcome.ticket is not None
        record = state_record(outcome.ticket, event.event_id, now, "engine.processor")
        seeded.append((message_id, outcome.ticket.ticket_id, to_json(record)))
    return seeded


class Topics:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.events = named(TICKET_EVENTS, prefix)
        self.states = named(TICKET_STATE, prefix)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self.seen: list[tuple[str, int, int, dict[str, Any]]] = []
        partitions = self.consumer.partitions_for_topic(self.states) or set()
        self.partitions = [TopicPartition(self.states, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.producer.send(topic, key=key.encode(), value=value).get(timeout=30)

    def state_of(self, ticket: str, event_count: int) -> tuple[int, int]:
        """Waits for the ticket's state record with ``event_count`` events: its partition
        and offset."""

        def found() -> tuple[int, int] | None:
            for batch in self.consumer.poll(timeout_ms=500).values():
                for record in batch:
                    value = json.loads(record.value)
                    self.seen.append((record.key.decode(), record.partition, record.offset, value))
            for key, partition, offset, value in self.seen:
                if key == ticket and value["data"]["ticket"]["event_count"] == event_count:
                    return partition, offset
            return None

        return wait_until(found, 120, f"the state of {ticket} with {event_count} events")  # type: ignore[no-any-return]

    def last_offsets(self) -> dict[int, int]:
        ends = self.consumer.end_offsets(self.partitions)
        return {tp.partition: end - 1 for tp, end in ends.items() if end > 0}

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()


@pytest.fixture
def state_topics(topics: str, topic_prefix: str) -> Iterator[Topics]:
    opened = Topics(topics, topic_prefix)
    yield opened
    opened.close()


def persisted_offsets(state_dir: Path) -> dict[int, int]:
    """The changelog offsets the stopped processor's local copy holds, by partition."""
    offsets = {}
    for path in sorted((state_dir / "processor").rglob("tickets-*.db")):
        partition = int(path.name.removesuffix(".db").rsplit("-", 1)[1])
        db = rocksdict.Rdict(
            str(path),
            options=rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
        try:
            stored = db.get(OFFSET_KEY)
        finally:
            db.close()
        if stored is not None:
            offsets[partition] = int(stored)
    return offsets


@pytest.mark.parametrize("ended", ["stopped", "killed"])
def test_a_restarted_processor_knows_every_ticket_and_reads_back_only_what_is_new(
    state_topics: Topics, topic_prefix: str, tmp_path: Path, ended: str
) -> None:
    seeded = seeded_states(SEEDED)
    for _, ticket, record in seeded:
        state_topics.send(state_topics.states, ticket, record)
    env = engine_env(
        tmp_path / "engine", state_topics.bootstrap, topic_prefix,
        ENGINE_PROCESSOR_STORE="rocksdict",
    )  # fmt: skip
    state_dir = tmp_path / "engine"

    first = ProcessorProcess(env, tmp_path / "first.log")
    try:
        first.wait_assigned()
        # A follow-up to a seeded ticket, and a new ticket, both written by this processor.
        old_message, old_ticket, _ = seeded[0]
        follow_up = mail("Re: Troncal", f"{uuid.uuid4()}@acme.example", reply_to=old_message)
        assert follow_up.data.ticket_id == old_ticket
        state_topics.send(state_topics.events, old_ticket, to_json(follow_up))
        new = mail("Troncal caída", f"{uuid.uuid4()}@acme.example")
        state_topics.send(state_topics.events, new.data.ticket_id, to_json(new))
        state_topics.state_of(old_ticket, 2)
        state_topics.state_of(new.data.ticket_id, 1)
        read_back_at_first_start = first.metrics.metric(RESTORED)
        if ended == "killed":  # gone at once, as the stall watchdog's exit is
            first.kill()
    finally:
        first.stop()

    # The first start read the whole changelog; the local copy now ends where the topic ends.
    assert read_back_at_first_start >= SEEDED
    if ended == "stopped":
        assert persisted_offsets(state_dir) == state_topics.last_offsets()

    restarted = ProcessorProcess(env, tmp_path / "restarted.log")
    try:
        restarted.wait_assigned()
        # Every ticket is known: the one opened before any processor ran, the one this
        # processor updated, the one it opened.
        other_message, other_ticket, _ = seeded[-1]
        for message_id, ticket, events in (
            (other_message, other_ticket, 2),
            (old_message, old_ticket, 3),
            (new.data.message_id, new.data.ticket_id, 2),
        ):
            assert message_id is not None
            reply = mail("Re: Troncal", f"{uuid.uuid4()}@acme.example", reply_to=message_id)
            assert reply.data.ticket_id == ticket
            state_topics.send(state_topics.events, ticket, to_json(reply))
            state_topics.state_of(ticket, events)
        read_back_at_restart = restarted.metrics.metric(RESTORED)
    finally:
        restarted.stop()

    # Nothing read back: every acknowledged row reached the disk with its offset before
    # the batch was committed (killed: at most the two rows of the batch it died in).
    assert read_back_at_restart <= (0 if ended == "stopped" else 2), restarted.log()[-3000:]
    assert persisted_offsets(state_dir) == state_topics.last_offsets()


BULK_COPIES = 15_000  # about 2,500 a partition: every partition past the bulk threshold
BULK = "ticketing_table_rows_restored_in_bulk_total"


def test_a_first_start_reads_a_long_changelog_in_bulk_and_knows_every_ticket(
    state_topics: Topics, topic_prefix: str, tmp_path: Path
) -> None:
    """A processor with no local copy reads the partitions far behind with a consumer of
    its own (decision 67), not through faust's recovery, and ends where the topic ends."""
    seeded = seeded_states(2)
    (template_message, template_ticket, template), (last_message, last_ticket, last) = seeded
    copies = [f"T-BULK{n:09d}" for n in range(BULK_COPIES)]
    for ticket in copies:
        copy = template.replace(template_ticket.encode(), ticket.encode())
        state_topics.producer.send(state_topics.states, key=ticket.encode(), value=copy)
    state_topics.producer.flush(timeout=60)
    state_topics.send(state_topics.states, template_ticket, template)
    state_topics.send(state_topics.states, last_ticket, last)
    env = engine_env(
        tmp_path / "engine", state_topics.bootstrap, topic_prefix,
        ENGINE_PROCESSOR_STORE="rocksdict",
    )  # fmt: skip

    processor = ProcessorProcess(env, tmp_path / "processor.log")
    try:
        processor.wait_assigned()
        for message_id, ticket in (
            (template_message, template_ticket),
            (last_message, last_ticket),
        ):
            reply = mail("Re: Troncal", f"{uuid.uuid4()}@acme.example", reply_to=message_id)
            assert reply.data.ticket_id == ticket
            state_topics.send(state_topics.events, ticket, to_json(reply))
            state_topics.state_of(ticket, 2)
        read_in_bulk = processor.metrics.metric(BULK)
        read_back = processor.metrics.metric(RESTORED)
    finally:
        processor.stop()

    assert read_in_bulk >= BULK_COPIES * 0.8, processor.log()[-3000:]
    assert read_back >= BULK_COPIES + 2
    assert persisted_offsets(tmp_path / "engine") == state_topics.last_offsets()
