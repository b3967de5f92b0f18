from __future__ import annotations

import re
import uuid

import pytest

from engine.contract.identity import (
    TICKET_ID_PATTERN,
    email_ticket_id,
    event_id,
    ticket_id,
    ticket_tag,
)


def test_ticket_ids_are_derived_and_well_formed() -> None:
    first = ticket_id("email", "root@acme")
    assert first == ticket_id("email", "root@acme")
    assert first != ticket_id("email", "other@acme")
    assert re.fullmatch(TICKET_ID_PATTERN, first)


def test_a_reply_joins_the_thread_of_its_root_message() -> None:
    root = email_ticket_id("Caída", "root@acme", None, (), "d1")
    reply = email_ticket_id("Re: Caída", "reply@acme", "root@acme", ("root@acme",), "d2")
    late_reply = email_ticket_id(
        "RE: Caída", "r2@acme", "reply@acme", ("root@acme", "reply@acme"), "d3"
    )

    assert root == reply == late_reply


def test_a_ticket_tag_in_the_subject_wins_over_headers() -> None:
    tagged = ticket_id("email", "elsewhere@acme")
    subject = f"Re: {ticket_tag(tagged)} sigue sin funcionar"

    assert email_ticket_id(subject, "x@acme", "root@acme", ("root@acme",), "d") == tagged


def test_mail_without_ids_is_identified_by_its_content() -> None:
    assert email_ticket_id("s", None, None, (), "digest-a") == email_ticket_id(
        "s", None, None, (), "digest-a"
    )
    assert email_ticket_id("s", None, None, (), "digest-a") != email_ticket_id(
        "s", None, None, (), "digest-b"
    )


def test_event_ids_are_deterministic_per_source_fact() -> None:
    assert event_id("email", "m1@acme") == event_id("email", "m1@acme")
    assert event_id("email", "m1@acme") != event_id("email", "m2@acme")
    assert event_id("email", "m1@acme").startswith("email:")


@pytest.mark.parametrize("name", ["", "m1@acme", "trap:ab12", "ñandú " * 50, "\x00\u2028"])
def test_event_ids_are_the_uuid5_they_always_were(name: str) -> None:
    namespace = uuid.UUID("8d6f5c1e-8e43-4d7a-9a57-3f1b0c0e7a11")  # never changes: ids would
    assert event_id("src", name) == f"src:{uuid.uuid5(namespace, name)}"


def test_a_reply_to_an_engine_notice_joins_its_ticket_even_without_the_tag() -> None:
    ticket = ticket_id("email", "root@acme")
    notice = f"ack.{ticket}@support.example.com"

    assert email_ticket_id("Re: otra cosa", "r@acme", notice, (notice,), "d") == ticket


def test_a_cluster_id_never_starts_like_a_command_line_option() -> None:
    from engine.kafka.broker import new_cluster_id

    ids = [new_cluster_id() for _ in range(3000)]

    assert not any(found.startswith("-") for found in ids)
    assert all(len(found) == 22 for found in ids)
