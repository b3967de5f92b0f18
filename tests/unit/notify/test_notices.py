"""Acknowledgements: when one is due, what it says, and how it reaches the relay."""

from __future__ import annotations

import asyncio
import email
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.contract import (
    ActivityType,
    Channel,
    Classification,
    Priority,
    RecordDeadLettered,
    RecordLocation,
    RouteDecision,
    TicketActivity,
    TicketActivityData,
    TicketRouted,
    TicketRoutedData,
    TicketState,
    TicketStatus,
    Tier,
    parse_record,
    to_json,
)
from engine.contract.customers import CustomerDirectory
from engine.contract.identity import email_ticket_id
from engine.contract.topics import DEAD_LETTERS
from engine.notify.notices import acknowledgement, may_receive_mail, update
from engine.notify.notifier import NoticeRefusedError, RecentlySent, _Notifies, deliver
from engine.settings import Settings

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def no_jitter() -> float:
    return 0.0


def routed(
    requester: str = "ana@acme.example",
    event_count: int = 1,
    channel: Channel = Channel.EMAIL,
    ticket_id: str = "T-ABCDEFGHIJKLM",
) -> TicketRouted:
    ticket = TicketState(
        ticket_id=ticket_id, status=TicketStatus.OPEN, channel=channel,
        subject="RE: Central caída", requester=requester, customer_id=None, opened_at=T0,
        updated_at=T0, priority=Priority.P1, category="pbx_down", tier=Tier.L3,
        special_routes=(), tags=(), event_count=event_count, recent_event_ids=("e1",),
        ruleset_version="v",
    )  # fmt: skip
    return routed_state(ticket)


def routed_state(ticket: TicketState) -> TicketRouted:
    """The ``ticket.routed`` record of a ticket's state, as the processor writes it."""
    classification = Classification(
        priority=ticket.priority, category=ticket.category, tags=(), matches=(), explanation=(),
        ruleset_version="v",
    )  # fmt: skip
    return TicketRouted(
        event_id="r1", occurred_at=T0, source="t",
        data=TicketRoutedData(
            ticket_id=ticket.ticket_id, cause_event_id="e1", ticket=ticket,
            classification=classification,
            route=RouteDecision(tier=ticket.tier, special_routes=(), route_path=("root",),
                                ruleset_version="v"),
        ),
    )  # fmt: skip


def test_a_new_email_ticket_is_acknowledged_in_the_customers_language() -> None:
    spanish = acknowledgement(routed(), "es", "soporte@support.example.com", "support.example.com")
    english = acknowledgement(routed(), "en", "soporte@support.example.com", "support.example.com")

    assert spanish is not None and english is not None
    assert spanish.message["Subject"] == "[#T-ABCDEFGHIJKLM] Recibimos su solicitud: Central caída"
    assert "cada 2 horas" in spanish.message.get_content()
    assert english.message["Subject"].startswith("[#T-ABCDEFGHIJKLM] We received your request")
    assert "every 2 hours" in english.message.get_content()
    assert spanish.message["Message-ID"] == "<ack.T-ABCDEFGHIJKLM@support.example.com>"
    assert spanish.message["Auto-Submitted"] == "auto-replied"
    assert spanish.to == "ana@acme.example"


@pytest.mark.parametrize(
    "case",
    [
        {"event_count": 2},
        {"requester": "MAILER-DAEMON@mx.acme.example"},
        {"requester": ""},
        {"channel": Channel.PHONE},
    ],
)
def test_no_acknowledgement_when_none_is_due(case: dict[str, Any]) -> None:
    assert acknowledgement(routed(**case), "es", "s@x.example", "x.example") is None


def test_mail_systems_never_receive_notices() -> None:
    assert may_receive_mail("ana@acme.example")
    assert not may_receive_mail("postmaster@acme.example")
    assert not may_receive_mail("not-an-address")


class Relay:
    """A real SMTP server on loopback that answers from a script, then accepts."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.received: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answers:
            return self.answers.pop(0)
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def relay_server() -> Iterator[tuple[Relay, str]]:
    relay = Relay([])
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(relay, loop=loop), "127.0.0.1", 0)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield relay, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def test_a_4xx_from_the_relay_is_retried_with_backoff(relay_server: tuple[Relay, str]) -> None:
    relay, address = relay_server
    relay.answers = ["451 4.3.0 try later", "421 4.4.2 busy"]
    notice = acknowledgement(routed(), "es", "soporte@support.example.com", "x.example")
    assert notice is not None
    waits: list[float] = []

    attempts = deliver(notice, address, sleep=waits.append, draw=no_jitter)

    assert attempts == 3
    assert waits == [1.0, 2.0]
    (envelope,) = relay.received
    assert envelope.rcpt_tos == ["ana@acme.example"]


def test_a_5xx_from_the_relay_is_permanent(relay_server: tuple[Relay, str]) -> None:
    relay, address = relay_server
    relay.answers = ["554 5.7.1 rejected"]
    notice = acknowledgement(routed(), "es", "soporte@support.example.com", "x.example")
    assert notice is not None

    with pytest.raises(NoticeRefusedError, match="554"):
        deliver(notice, address, sleep=lambda _: None)
    assert relay.received == []


def test_an_unreachable_relay_fails_after_the_last_attempt() -> None:
    notice = acknowledgement(routed(), "es", "soporte@support.example.com", "x.example")
    assert notice is not None
    waits: list[float] = []

    with pytest.raises(OSError):
        deliver(notice, "127.0.0.1:1", sleep=waits.append, attempts=3, draw=no_jitter)
    assert waits == [1.0, 2.0]


def test_the_relay_backoff_is_shortened_by_jitter_at_most_by_half(
    relay_server: tuple[Relay, str],
) -> None:
    relay, address = relay_server
    relay.answers = ["451 4.3.0 try later", "421 4.4.2 busy"]
    notice = acknowledgement(routed(), "es", "soporte@support.example.com", "x.example")
    assert notice is not None
    waits: list[float] = []

    deliver(notice, address, sleep=waits.append, draw=lambda: 0.999)

    assert 0.5 < waits[0] < 1.0 and 1.0 < waits[1] < 2.0


def informed(
    message: str | None = "Cambiamos la tarjeta; las llamadas ya entran.",
    via: Channel | None = Channel.EMAIL,
    requester: str = "ana@acme.example",
) -> TicketActivity:
    ticket = routed(requester=requester).data.ticket
    return TicketActivity(
        event_id="act-1", occurred_at=T0, source="api",
        data=TicketActivityData(
            ticket_id=ticket.ticket_id, activity=ActivityType.CUSTOMER_INFORMED, actor="ana",
            message=message, informed_via=via, ticket=ticket,
        ),
    )  # fmt: skip


def test_an_update_carries_the_agents_words_under_the_ticket_tag_and_threads() -> None:
    notice = update(informed(), "es", "soporte@support.example.com", "support.example.com")

    assert notice is not None and notice.to == "ana@acme.example" and notice.kind == "update"
    message = notice.message
    assert message["Subject"] == "[#T-ABCDEFGHIJKLM] Avance de su solicitud: Central caída"
    assert message.get_content().startswith("Cambiamos la tarjeta; las llamadas ya entran.")
    assert message["In-Reply-To"] == "<ack.T-ABCDEFGHIJKLM@support.example.com>"
    again = update(informed(), "es", "soporte@support.example.com", "support.example.com")
    assert again is not None and again.message["Message-ID"] == message["Message-ID"]
    reply_to = message["Message-ID"].strip("<>")
    assert email_ticket_id("Otro asunto", None, reply_to, (), "0" * 64) == "T-ABCDEFGHIJKLM"


@pytest.mark.parametrize(
    "activity",
    [
        informed(message=None),
        informed(via=Channel.PHONE),
        informed(requester="MAILER-DAEMON@acme.example"),
    ],
)
def test_no_update_mail_without_words_for_mail_or_a_mailbox_to_send_them(
    activity: TicketActivity,
) -> None:
    assert update(activity, "es", "soporte@support.example.com", "support.example.com") is None


@pytest.mark.parametrize("character", ["\r\n", "\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"])
def test_a_subject_with_a_line_break_gives_a_notice_on_one_line(character: str) -> None:
    ticket = routed().data.ticket.model_copy(
        update={"subject": f"Central caida{character}Bcc: x@evil.example"}
    )
    record = routed().model_copy(
        update={"data": routed().data.model_copy(update={"ticket": ticket})}
    )

    notice = acknowledgement(record, "es", "soporte@support.example.com", "x.example")

    assert notice is not None
    assert notice.message["Subject"].endswith("Central caida Bcc: x@evil.example")
    assert notice.message["Bcc"] is None and b"\nBcc" not in notice.message.as_bytes()


@pytest.fixture
def ascii_relay() -> Iterator[tuple[Relay, str]]:
    relay = Relay([])
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(relay, loop=loop, enable_SMTPUTF8=False, decode_data=False),
            "127.0.0.1",
            0,
        )
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield relay, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def test_a_non_ascii_address_a_relay_without_smtputf8_cannot_take_is_refused_at_once(
    ascii_relay: tuple[Relay, str],
) -> None:
    relay, address = ascii_relay
    notice = acknowledgement(routed("añá@acme.example"), "es", "s@support.example", "x.example")
    assert notice is not None
    waits: list[float] = []

    with pytest.raises(NoticeRefusedError, match="cannot take it"):
        deliver(notice, address, sleep=waits.append)

    assert waits == [] and relay.received == []


@dataclass(frozen=True)
class Consumed:
    topic: str
    partition: int
    offset: int
    value: bytes


class BrokenForOneRequester:
    """A customer directory that fails on one requester's address, as a bug would."""

    def by_id(self, customer_id: str) -> None:
        return None

    def lookup(self, address: str) -> None:
        if address.startswith("mala"):
            raise ValueError(f"cannot look up {address!r}")
        return None


def test_a_record_whose_notice_cannot_be_built_is_dead_lettered_and_the_next_is_sent(
    relay_server: tuple[Relay, str],
) -> None:
    relay, address = relay_server
    settings = Settings(notify_relay=address, notify_from="soporte@support.example.com")
    handler = _Notifies(cast(CustomerDirectory, BrokenForOneRequester()), settings, None)
    bad, good = to_json(routed("mala@acme.example")), to_json(routed())
    records = [Consumed("tickets.routed.l3.v1", 2, 40, bad), Consumed("t", 2, 41, good)]

    outputs = handler.outputs(records)

    [(topic, _key, value)] = outputs
    letter = parse_record(value)
    assert topic == DEAD_LETTERS and isinstance(letter, RecordDeadLettered)
    assert "cannot be built" in letter.data.reason and "ValueError" in letter.data.reason
    assert letter.data.original == RecordLocation(
        topic="tickets.routed.l3.v1", partition=2, offset=40
    )
    assert [envelope.rcpt_tos for envelope in relay.received] == [["ana@acme.example"]]


def test_the_notifier_says_it_is_alive_after_each_notice_of_a_batch(
    relay_server: tuple[Relay, str],
) -> None:
    relay, address = relay_server
    settings = Settings(notify_relay=address, notify_from="soporte@support.example.com")
    said: list[int] = []
    handler = _Notifies(
        cast(CustomerDirectory, BrokenForOneRequester()),
        settings,
        None,
        alive=lambda: said.append(len(relay.received)),
    )
    tickets = [f"T-ABCDEFGHIJKL{n}" for n in "234"]
    records = [Consumed("t", 0, n, to_json(routed(ticket_id=t))) for n, t in enumerate(tickets)]

    handler.outputs(records)

    assert said == [1, 2, 3]  # one for each notice, once the relay took it


def test_a_routed_record_published_again_is_not_acknowledged_twice(
    relay_server: tuple[Relay, str],
) -> None:
    relay, address = relay_server
    settings = Settings(notify_relay=address, notify_from="soporte@support.example.com")
    handler = _Notifies(cast(CustomerDirectory, BrokenForOneRequester()), settings, None)
    again = to_json(routed())  # a processor killed before its state: the same record twice
    other = to_json(routed(ticket_id="T-ZZZZZZZZZZZZZ"))

    handler.outputs([Consumed("t", 0, 1, again), Consumed("t", 0, 2, other)])
    handler.outputs([Consumed("t", 1, 7, again)])

    assert [envelope.rcpt_tos for envelope in relay.received] == [["ana@acme.example"]] * 2
    ids = [email.message_from_bytes(envelope.original_content or b"")["Message-ID"]
           for envelope in relay.received]  # fmt: skip
    assert len(set(ids)) == 2


def test_the_recently_sent_message_ids_are_bounded_oldest_first_out() -> None:
    sent = RecentlySent(capacity=2)
    for message_id in ("<a@x>", "<b@x>", "<c@x>"):
        sent.add(message_id)
    assert "<a@x>" not in sent and "<b@x>" in sent and "<c@x>" in sent
