"""``engine notifier``: tells customers their mail or their device's alarm became a ticket,
and what the desk has to tell them since; tells agents which tickets are theirs, and the
desk's people what the escalation matrix says they must know.

A downstream consumer (its own consumer group) of the tier topics (acknowledgements), of
the ticket activity topic (the desk's updates, assignments) and of the escalations topic.
Each notice is handed to the configured SMTP relay; a 4xx or an unreachable relay is
retried with backoff, and the offset is committed only after the relay accepted it
(at-least-once; a notice replayed after a crash carries the same Message-ID). A 5xx is
permanent: the notice is kept on the dead-letter topic with the relay's answer, and the
batch's offsets are committed once Kafka acknowledged its dead letters
(``engine.kafka.loop``). So is a notice the relay cannot take at all (an address that
needs SMTPUTF8 from a relay without it), and a record whose notice cannot be built: no
record stops the notices after it.
"""

from __future__ import annotations

import logging
import random
import smtplib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from engine import metrics
from engine.clock import SystemClock
from engine.contract import (
    ActivityType,
    EscalationNotified,
    TicketActivity,
    TicketRouted,
    parse_record,
    to_json,
)
from engine.contract.customers import CustomerDirectory, load_directory
from engine.contract.topics import DEAD_LETTERS, ESCALATIONS, TICKET_ACTIVITY, TIER_TOPICS
from engine.errors import EngineError
from engine.kafka.consumer import new_consumer
from engine.kafka.deadletter import dead_letter, location_of
from engine.kafka.loop import BatchHandler, ConsumeLoop
from engine.kafka.producer import Record, new_producer
from engine.kafka.retry import Backoff, Draw
from engine.metrics import NoticeKind, NoticeOutcome
from engine.notify.backscatter import withheld_acknowledgement
from engine.notify.escalations import escalation_notice
from engine.notify.notices import Notice, acknowledgement, assignment, update
from engine.outage_log import bootstrap_servers, wait_until_kafka_answers
from engine.process import StopSignal, configure_logging
from engine.settings import Settings
from engine.workers.agents import AgentsDirectory, load_configured

log = logging.getLogger(__name__)
SOURCE = "engine.notifier"
MAX_ATTEMPTS = 8
RELAY_BACKOFF = Backoff(first_seconds=1.0, max_seconds=60.0)


class NoticeRefusedError(EngineError):
    """The relay refused the notice for good (5xx)."""


def deliver(
    notice: Notice,
    relay: str,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = MAX_ATTEMPTS,
    draw: Draw = random.random,
) -> int:
    """Hand the notice to the relay; returns the number of attempts it took.

    Retries 4xx answers and connection failures with exponential backoff and jitter;
    raises NoticeRefusedError on a 5xx, and the last error when the attempts run out."""
    host, _, port_text = relay.rpartition(":")
    port = int(port_text)  # a setting validated at start; never a notice's fault
    for attempt in range(1, attempts + 1):
        try:
            with smtplib.SMTP(host, port, timeout=30) as smtp:
                smtp.send_message(notice.message)
            return attempt
        except smtplib.SMTPRecipientsRefused as error:
            code = min(code for code, _ in error.recipients.values())
            if code >= 500:
                raise NoticeRefusedError(f"{code} for {notice.to}") from error
            failure: Exception = error
        except smtplib.SMTPResponseException as error:
            if error.smtp_code >= 500:
                raise NoticeRefusedError(f"{error.smtp_code} {error.smtp_error!r}") from error
            failure = error
        except (smtplib.SMTPNotSupportedError, UnicodeError, ValueError) as error:
            # the same notice would fail the same way on every try: non-ASCII addresses
            # and a relay without SMTPUTF8, a header the message cannot be written with
            raise NoticeRefusedError(f"the relay cannot take it: {error}") from error
        except (OSError, smtplib.SMTPException) as error:
            failure = error
        if attempt == attempts:
            raise failure
        delay = RELAY_BACKOFF.pause(attempt, draw)
        log.warning("relay %s: %s; retrying in %.1fs", relay, failure, delay)
        sleep(delay)
    raise AssertionError("unreachable")


def notice_for(
    value: bytes,
    directory: CustomerDirectory,
    settings: Settings,
    agents: AgentsDirectory | None = None,
) -> Notice | None:
    """The notice a record asks for; None when it asks for none. Without an agents
    directory (``ENGINE_AGENTS_FILE``) nobody is told of assignments."""
    try:
        record = parse_record(value)
    except ValidationError:
        return None  # not ours to judge: the topic's producer validates what it writes
    sender = settings.notify_from
    domain = sender.rpartition("@")[2] or "ticketing-engine"
    if isinstance(record, EscalationNotified):
        return escalation_notice(record, sender, domain)
    if not isinstance(record, TicketRouted | TicketActivity) or record.data.ticket is None:
        return None
    ticket = record.data.ticket
    if isinstance(record, TicketActivity) and record.data.activity is ActivityType.ASSIGNED:
        agent = agents.agents.get(ticket.assignee or "") if agents is not None else None
        return assignment(record, agent, sender, domain) if agent is not None else None
    found = directory.by_id(ticket.customer_id) if ticket.customer_id else None
    found = found or directory.lookup(ticket.requester)
    contacts = found.contacts if found else ()
    customer = ticket.customer or found
    language = (customer.language if customer else None) or settings.notify_default_language
    if isinstance(record, TicketRouted):
        notice = acknowledgement(record, language, sender, domain, contacts)
        withheld = withheld_acknowledgement(ticket, directory, settings.notify_ack_unknown_senders)
        if notice is not None and withheld is not None:
            log.info("acknowledgement of %s withheld: %s", ticket.ticket_id, withheld)
            metrics.ACKS_WITHHELD.labels(withheld).inc()
            return None
        return notice
    return update(record, language, sender, domain, contacts)


class RecentlySent:
    """The Message-IDs of the last ``capacity`` notices this process handed to the relay.

    Records reach the notifier at least once: a processor killed after publishing a
    routed record but before recording its ticket's state publishes it again (same
    ``event_id``), and the repeat would send the same notice twice. A notice's Message-ID
    is derived from what it tells (the ticket's acknowledgement, an update, an
    escalation step), so a repeat is one whose Message-ID was sent already. A restarted
    notifier starts with none: its own redelivery window (records after its last commit)
    is the one left.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._ids

    def add(self, message_id: str) -> None:
        self._ids[message_id] = None
        self._ids.move_to_end(message_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class _Notifies(BatchHandler):
    """Each record's notice to the relay; a notice the relay refused for good becomes a
    dead letter, published with the batch. ``alive()`` is said after each record: a batch
    waits for the relay, notice after notice, and systemd's watchdog sees it move."""

    def __init__(
        self,
        directory: CustomerDirectory,
        settings: Settings,
        agents: AgentsDirectory | None,
        alive: Callable[[], None] = lambda: None,
    ) -> None:
        self._directory = directory
        self._settings = settings
        self._agents = agents
        self._alive = alive
        self._sent = RecentlySent()

    def outputs(self, records: Sequence[ConsumerRecord]) -> list[Record]:
        outputs: list[Record] = []
        for record in records:
            letter = _notify(record, self._directory, self._settings, self._agents, self._sent)
            if letter is not None:
                outputs.append(letter)
            self._alive()
        return outputs


def run_notifier(settings: Settings) -> None:
    configure_logging(settings)
    wait_until_kafka_answers(bootstrap_servers(settings.kafka_bootstrap))
    directory = load_directory(settings.customers_file)
    agents = None
    if settings.agents_file is not None:
        agents = load_configured(
            settings.agents_file, settings.sla_calendars_file, settings.rules_file
        )
    bootstrap = settings.kafka_bootstrap
    consumer = new_consumer(
        bootstrap,
        *TIER_TOPICS.values(),
        TICKET_ACTIVITY,
        ESCALATIONS,
        group_id=f"{settings.app_id}-notifier",
    )
    stop = StopSignal()
    loop = ConsumeLoop(
        "notifier",
        consumer,
        _Notifies(directory, settings, agents, stop.alive),
        lambda: new_producer(bootstrap),
    )
    port = metrics.serve_metrics(settings.notifier_metrics_port, settings.metrics_host)
    told = "updates, assignments and escalations" if agents is not None else "updates"
    print(f"notifier: acknowledging tickets and sending {told} through {settings.notify_relay}; "
          f"metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)  # fmt: skip
    loop.run(stop)


def _notify(
    record: ConsumerRecord,
    directory: CustomerDirectory,
    settings: Settings,
    agents: AgentsDirectory | None,
    sent: RecentlySent,
) -> Record | None:
    """Hand the record's notice (if it asks for one, and its Message-ID was not sent
    already) to the relay; the dead letter to publish when the notice cannot be built, or
    the relay refused it for good."""
    try:
        notice = notice_for(record.value, directory, settings, agents)
    except Exception as error:  # one ticket's data must not stop every notice after it
        log.warning("no notice for %s[%s]@%s: %r", record.topic, record.partition,
                    record.offset, error)  # fmt: skip
        metrics.NOTICES.labels(NoticeKind.UNKNOWN, NoticeOutcome.UNBUILDABLE).inc()
        return _letter(
            record.value, f"the notice cannot be built: {type(error).__name__}: {error}",
            record.topic, record,
        )  # fmt: skip
    if notice is None:
        return None
    kind = notice.kind
    message_id = str(notice.message["Message-ID"] or "")
    if message_id and message_id in sent:
        log.info("notice %s sent already: not again", message_id)
        metrics.NOTICES.labels(NoticeKind(kind), NoticeOutcome.REPEATED).inc()
        return None
    try:
        deliver(notice, settings.notify_relay)
    except NoticeRefusedError as refusal:
        metrics.NOTICES.labels(NoticeKind(kind), NoticeOutcome.REFUSED).inc()
        try:
            kept = notice.message.as_bytes()
        except Exception:  # a notice that cannot even be written out: keep its record
            kept = record.value
        return _letter(kept, f"relay refused the notice: {refusal}", "notifier", record)
    metrics.NOTICES.labels(NoticeKind(kind), NoticeOutcome.SENT).inc()
    if message_id:
        sent.add(message_id)
    return None


def _letter(payload: bytes, reason: str, origin: str, record: ConsumerRecord) -> Record:
    letter = dead_letter(
        payload, reason=reason, field=None, origin=origin, source=SOURCE,
        now=SystemClock().now(), original=location_of(record),
    )  # fmt: skip
    return DEAD_LETTERS, letter.data.payload_sha256.encode(), to_json(letter)
