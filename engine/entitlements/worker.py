"""``engine entitlements``: the support-hours ledger, and telling customers without hours.

One process (its own consumer group) reads the top-ups (``entitlements.events.v1``), the
time spent on tickets (``time_spent`` on ``tickets.activity.v1``, which carries the
customer id) and the tickets routed to ``entitlement_needed``. It keeps every balance in
memory, rebuilt from the compacted ``entitlements.balances.v1`` at start, writes each new
balance there, and commits its offsets only after Kafka acknowledged what it wrote: a
crash replays, and the balance's recent event ids make a replayed event count once.
Balances are keyed by customer while activity is keyed by ticket, so one ledger writes at
a time: several processes may run, and the one holding the lease keeps the ledger while the
others stand by to take over (decision 61).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from engine import metrics
from engine.clock import Clock, SystemClock
from engine.contract import (
    EntitlementBalanceData,
    EntitlementToppedUp,
    EntitlementTopUpData,
    EntitlementUpdated,
    Envelope,
    RecordLocation,
    SpecialRoute,
    TicketActivity,
    TicketRouted,
    parse_record,
    to_json,
)
from engine.contract.customers import CustomerDirectory, load_directory
from engine.contract.identity import event_id
from engine.contract.topics import (
    AGENTS_PRESENCE,
    DEAD_LETTER_MAX_BYTES,
    DEAD_LETTERS,
    ENTITLEMENT_BALANCES,
    ENTITLEMENT_EVENTS,
    SPECIAL_ROUTE_TOPICS,
    TICKET_ACTIVITY,
    TICKET_EVENTS,
)
from engine.entitlements.ledger import (
    apply_event,
    balance_record,
    customer_of,
    exhausted_notice,
    opening_balance,
    with_directory_hours,
)
from engine.errors import describe_validation
from engine.kafka.catch_up import records_to_end
from engine.kafka.consumer import new_consumer
from engine.kafka.deadletter import dead_letter, location_of
from engine.kafka.lease import BlockingLease
from engine.kafka.loop import BatchHandler, ConsumeLoop
from engine.kafka.producer import Record, new_producer, publish
from engine.outage_log import bootstrap_servers, wait_until_kafka_answers
from engine.process import StopSignal, configure_logging
from engine.settings import Settings

log = logging.getLogger(__name__)
SOURCE = "engine.entitlements"
ENTITLEMENT_NEEDED = SPECIAL_ROUTE_TOPICS[SpecialRoute.ENTITLEMENT_NEEDED]
# The lease is a group's hold on partition 0 of a single-partition topic (decision 54).
LEASE_TOPIC = AGENTS_PRESENCE
Output = tuple[str, str, Envelope]
# What the ledger reads from each topic; any other record there is a dead letter.
EXPECTED_KINDS: dict[str, type[Envelope]] = {
    ENTITLEMENT_EVENTS: EntitlementToppedUp,
    TICKET_ACTIVITY: TicketActivity,
    ENTITLEMENT_NEEDED: TicketRouted,
}
# Dead letters keep their input whole: one of a record near a topic's size limit is
# larger than Kafka's default request.
MAX_REQUEST_BYTES = DEAD_LETTER_MAX_BYTES + 64 * 1024


class Balances(NamedTuple):
    by_customer: dict[str, EntitlementBalanceData]
    unreadable: list[Output]  # the dead letters of records that are no balance


def balances_of(records: Iterable[Any], now: datetime) -> Balances:
    """The balances the compacted topic's records leave, in order: a customer's last
    balance, none after a tombstone (their balance was deleted); a record that is no
    balance is a dead letter, and the others are still read."""
    balances: dict[str, EntitlementBalanceData] = {}
    unreadable: list[Output] = []

    def _letter(value: bytes, reason: str) -> Output:
        return _dead_letter(ENTITLEMENT_BALANCES, value, reason, now, location_of(record))

    for record in records:
        if record.value is None:
            if record.key is not None:
                balances.pop(record.key.decode(errors="replace"), None)
            continue
        try:
            parsed = parse_record(record.value)
        except ValidationError as error:
            reason = f"not a valid record: {describe_validation(error)}"
            unreadable.append(_letter(record.value, reason))
            continue
        if not isinstance(parsed, EntitlementUpdated):
            unreadable.append(_letter(record.value, f"a {parsed.kind} record is no balance"))
            continue
        balances[parsed.data.customer_id] = parsed.data
    return Balances(balances, unreadable)


def read_balances(bootstrap: str, clock: Clock) -> Balances:
    """Every balance on the compacted topic, read to its end."""
    return balances_of(records_to_end(bootstrap, ENTITLEMENT_BALANCES), clock.now())


def _dead_letter(
    origin: str, value: bytes, reason: str, now: datetime, original: RecordLocation | None
) -> Output:
    letter = dead_letter(
        value, reason=reason, field=None, origin=origin, source=SOURCE, now=now,
        original=original,
    )  # fmt: skip
    return DEAD_LETTERS, letter.data.payload_sha256, letter


class Ledger:
    """The balances and what each record does to them (no I/O)."""

    def __init__(
        self,
        balances: dict[str, EntitlementBalanceData],
        directory: CustomerDirectory,
        clock: Clock,
        default_language: str = "es",
    ) -> None:
        self.balances = balances
        self.directory = directory
        self.clock = clock
        self.default_language = default_language

    def opening_outputs(self) -> list[Output]:
        """Balances for directory customers with hours and no balance yet, and for those
        whose hours in the directory changed."""
        outputs: list[Output] = []
        for customer in self.directory.customers:
            if customer.support_hours is None:
                continue
            known = self.balances.get(customer.id)
            balance = (
                with_directory_hours(known, customer.support_hours)
                if known
                else opening_balance(customer.id, customer.support_hours)
            )
            if balance != known:
                cause = f"directory:{customer.support_hours}"
                outputs.append(self._record(balance, cause))
        return outputs

    def _record(self, balance: EntitlementBalanceData, cause: str) -> Output:
        record = balance_record(balance, cause, self.clock.now(), SOURCE)
        self.balances[balance.customer_id] = balance  # only once its record is made
        return ENTITLEMENT_BALANCES, balance.customer_id, record

    def outputs_of(
        self, topic: str, value: bytes | None, original: RecordLocation | None = None
    ) -> list[Output]:
        """A record's outputs; a record that is not valid, not of the topic's kind, a
        tombstone (these topics' records are never deleted), or that makes the ledger raise
        anything (it does no I/O), is a dead letter and the balances stay as they were."""
        if value is None:
            return [
                self._dead_letter(topic, b"", "a record without a value (a tombstone)", original)
            ]
        try:
            record = parse_record(value)
        except ValidationError as error:
            reason = f"not a valid record: {describe_validation(error)}"
            return [self._dead_letter(topic, value, reason, original)]
        expected = EXPECTED_KINDS.get(topic)
        if expected is not None and not isinstance(record, expected):
            reason = f"a {record.kind} record does not belong on {topic}"
            return [self._dead_letter(topic, value, reason, original)]
        try:
            match record:
                case TicketRouted() if topic == ENTITLEMENT_NEEDED:
                    return [self._notice(record)]
                case EntitlementToppedUp() | TicketActivity():
                    return self._deduct_or_add(record)
        except Exception as error:
            log.exception("entitlements: a record of %s failed", topic)
            return [self._dead_letter(topic, value, f"processing failed: {error!r}", original)]
        return []

    def _dead_letter(
        self, topic: str, value: bytes, reason: str, original: RecordLocation | None
    ) -> Output:
        return _dead_letter(topic, value, reason, self.clock.now(), original)

    def _deduct_or_add(self, event: EntitlementToppedUp | TicketActivity) -> list[Output]:
        customer_id = customer_of(event)
        if customer_id is None:
            return []
        balance = self.balances.get(customer_id)
        if balance is None:
            if isinstance(event, TicketActivity):
                return []  # a customer whose support is not metered
            balance = opening_balance(customer_id, 0.0)
        updated = apply_event(balance, event)
        if updated is None:
            return []
        return [self._record(updated, event.event_id)]

    def _notice(self, routed: TicketRouted) -> Output:
        ticket = routed.data.ticket
        balance = self.balances.get(ticket.customer_id or "")
        left = balance.hours_left if balance else 0.0
        language = (ticket.customer.language if ticket.customer else None) or (
            self.default_language
        )
        notice = exhausted_notice(routed, left, language, SOURCE)
        return TICKET_EVENTS, ticket.ticket_id, notice


def _records(outputs: Iterable[Output]) -> list[Record]:
    return [(topic, key.encode(), to_json(record)) for topic, key, record in outputs]


class LedgerBatches(BatchHandler):
    """A batch's records through the ledger; a batch Kafka refused is forgotten (its
    balances restored), so that reading it again counts its events again."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._before: dict[str, EntitlementBalanceData] = {}

    def outputs(self, records: Sequence[ConsumerRecord]) -> list[Record]:
        self._before = dict(self._ledger.balances)
        return _records(
            output
            for record in records
            for output in self._ledger.outputs_of(record.topic, record.value, location_of(record))
        )

    def refused(self) -> None:
        self._ledger.balances = self._before


class LeadingStop:
    """The ledger's loop runs while nobody asked it to stop and it holds the lease."""

    def __init__(self, signalled: StopSignal, lease: BlockingLease) -> None:
        self._signalled = signalled
        self._lease = lease

    @property
    def requested(self) -> bool:
        return self._signalled.requested or not self._lease.held

    def alive(self) -> None:
        self._signalled.alive()


def run_ledger(settings: Settings, clock: Clock | None = None) -> None:
    """One writer at a time: every ``engine entitlements`` process joins the ledger's lease
    group, and only the one holding the lease reads the balances and keeps the ledger; the
    others stand by (decision 61). A writer that loses the lease (a rebalance when another
    process joins, or a pause) stops writing and stands by; when it holds the lease again it
    reads the balances afresh, since another process may have written meanwhile."""
    configure_logging(settings)
    wait_until_kafka_answers(bootstrap_servers(settings.kafka_bootstrap))
    bootstrap = settings.kafka_bootstrap
    port = metrics.serve_metrics(settings.entitlements_metrics_port, settings.metrics_host)
    signalled = StopSignal()
    lease = BlockingLease(bootstrap, f"{settings.app_id}-entitlements-lease", LEASE_TOPIC)
    metrics.ENTITLEMENTS_LEADING.set(0)
    print(f"entitlements: waiting for the ledger's lease; "
          f"metrics on http://{settings.metrics_host}:{port}/metrics", flush=True)  # fmt: skip
    try:
        while lease.wait_held(lambda: _standing_by(signalled)):
            metrics.ENTITLEMENTS_LEADING.set(1)
            try:
                _keep_ledger(settings, clock, LeadingStop(signalled, lease))
            finally:
                metrics.ENTITLEMENTS_LEADING.set(0)
            if not signalled.requested:
                log.warning("entitlements: lost the ledger's lease; standing by")
    finally:
        lease.close()


def _standing_by(signalled: StopSignal) -> bool:
    """A standby serves (its /metrics) and is alive to its supervisor while it waits."""
    signalled.alive()
    return signalled.requested


def _keep_ledger(settings: Settings, clock: Clock | None, stop: LeadingStop) -> None:
    bootstrap = settings.kafka_bootstrap
    clock = clock or SystemClock()
    read = read_balances(bootstrap, clock)
    ledger = Ledger(
        read.by_customer, load_directory(settings.customers_file), clock,
        settings.notify_default_language,
    )  # fmt: skip
    consumer = new_consumer(
        bootstrap, ENTITLEMENT_EVENTS, TICKET_ACTIVITY, ENTITLEMENT_NEEDED,
        group_id=f"{settings.app_id}-entitlements",
    )  # fmt: skip
    loop = ConsumeLoop(
        "entitlements", consumer, LedgerBatches(ledger),
        lambda: new_producer(bootstrap, max_request_size=MAX_REQUEST_BYTES),
    )  # fmt: skip
    try:
        loop.publish(_records([*read.unreadable, *ledger.opening_outputs()]))
    except BaseException:
        loop.close()
        raise
    print(f"entitlements: holding the lease; {len(ledger.balances)} balances on "
          f"{ENTITLEMENT_BALANCES}; deducting time spent from {TICKET_ACTIVITY}",
          flush=True)  # fmt: skip
    loop.run(stop)


def top_up(
    bootstrap: str, customer_id: str, hours: float, reference: str, actor: str, now: datetime
) -> EntitlementToppedUp:
    record = EntitlementToppedUp(
        event_id=event_id("entitlement.topped_up", f"{customer_id}:{reference}"),
        occurred_at=now,
        source="engine.entitlements.topup",
        data=EntitlementTopUpData(
            customer_id=customer_id, hours=hours, reference=reference, actor=actor
        ),
    )
    publish(bootstrap, _records([(ENTITLEMENT_EVENTS, customer_id, record)]))
    return record


def describe_balance(balance: EntitlementBalanceData) -> str:
    last = f"; last deducted for {balance.last_ticket_id}" if balance.last_ticket_id else ""
    state = "ok"
    if balance.hours_left <= 0:
        state = "NO HOURS LEFT: new tickets go to entitlement_needed"
    return (
        f"{balance.customer_id}: {balance.hours_left:g} h left = {balance.initial_hours:g} h "
        f"from the directory + {balance.topped_up_hours:g} h topped up - "
        f"{balance.spent_minutes} min spent{last} ({state})"
    )
