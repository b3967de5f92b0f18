"""The fault campaign's checker: what its senders were told against what the topics hold.

Pure: the campaign (``bench/chaos.py``) records every input with the answer its sender
got, reads every topic back, and hands both here. Nothing acknowledged may be missing;
what was refused may or may not be there (its sender retries). Downstream effects are
counted by their identities: routed records by ``event_id``, SLA alerts and escalation
steps by ``dedup_key``, mails at the relay by Message-ID.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    MAIL = "mail"  # a new ticket by SMTP
    REPLY = "reply"  # a customer's reply to an open ticket, by SMTP
    INFORM = "inform"  # an SNMPv2c INFORM of its own alarm
    CHAT = "chat"  # a chat message of a new conversation, by HTTP


class Outcome(StrEnum):
    ACKED = "acked"  # 250, the INFORM's response, 202
    REFUSED = "refused"  # 4xx/5xx, 503, no answer, a dropped connection


@dataclass(frozen=True)
class Sent:
    """One input and what its sender was told. ``identity`` finds its event: the
    Message-ID of a mail, the event id a 202 named, the request id of an INFORM."""

    kind: Kind
    identity: str
    sent_at: float
    answered_at: float
    outcome: Outcome
    ticket_id: str | None = None
    answer: str = ""

    @property
    def opens_a_ticket(self) -> bool:
        return self.kind is not Kind.REPLY


@dataclass(frozen=True)
class Record:
    """A record read back: its key, its envelope's ``event_id``, the field that names the
    input it came from (``identity``, empty when none), and its Kafka timestamp."""

    key: str | None
    event_id: str
    identity: str = ""
    ticket_id: str | None = None
    timestamp: float = 0.0


@dataclass(frozen=True)
class Fault:
    name: str
    at: float  # wall clock, when the nemesis acted
    target: str


@dataclass(frozen=True)
class Recovery:
    """How long a fault held up routing: the slowest ack-to-routed of the new tickets
    acknowledged from the fault to ``window`` seconds after it, or to the next fault."""

    fault: Fault
    tickets: int
    slowest_seconds: float | None
    unrouted: int


@dataclass(frozen=True)
class Slice:
    """Ack-to-routed of the new tickets acknowledged in ``seconds`` seconds from ``start``
    (seconds from the first input)."""

    start: float
    tickets: int
    p50: float | None
    slowest: float | None


@dataclass
class Report:
    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    lost: list[Sent] = field(default_factory=list)
    unrouted: list[Sent] = field(default_factory=list)
    split: list[Sent] = field(default_factory=list)  # acked, but more than one distinct event
    redelivered_events: int = 0  # records of an event_id already seen on the input topics
    refused_but_present: int = 0
    routed_duplicates: int = 0
    effects: Counter[str] = field(default_factory=Counter)  # alerts, steps, mails read
    alert_duplicates: list[str] = field(default_factory=list)
    escalation_duplicates: list[str] = field(default_factory=list)
    mail_duplicates: list[str] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    baseline_seconds: float | None = None
    timeline: list[Slice] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """What breaks the campaign's guarantees; empty when they held."""
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} acknowledged inputs have no event")
        if self.unrouted:
            found.append(f"{len(self.unrouted)} acknowledged inputs' tickets were never routed")
        if self.split:
            found.append(f"{len(self.split)} acknowledged inputs became more than one event")
        # An SLA alert's event id is its identity (kind, dedup key, repeat): a repeat on the
        # topic is a redelivery, counted and stated like the tier topics'; what people see
        # of it, the escalation steps and the mails, must happen once.
        for what, keys in (
            ("escalation steps", self.escalation_duplicates),
            ("mails at the relay", self.mail_duplicates),
        ):
            if keys:
                found.append(f"{len(keys)} {what} written twice (first: {keys[0]})")
        return found


def duplicated(identities: Iterable[str]) -> list[str]:
    """The identities seen more than once, in the order first seen."""
    counts = Counter(identities)
    return [identity for identity, count in counts.items() if count > 1]


def nearest_rank(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def check(
    inputs: Sequence[Sent],
    events: Sequence[Record],
    routed: Sequence[Record],
    alerts: Sequence[str],
    escalations: Sequence[str],
    relayed_message_ids: Sequence[str],
    faults: Sequence[Fault] = (),
    recovery_window: float = 30.0,
) -> Report:
    """``events``: the input topics' records (``identity`` set to the Message-ID, chat
    event id or INFORM request id they carry); ``routed``: the tier topics' records."""
    report = Report()
    events_by_identity: dict[str, set[str]] = {}
    for event in events:
        if event.identity:
            events_by_identity.setdefault(event.identity, set()).add(event.event_id)
    report.redelivered_events = sum(
        count - 1 for count in Counter(event.event_id for event in events).values()
    )
    first_routed: dict[str, float] = {}
    for record in routed:
        if record.key is not None:
            first_routed[record.key] = min(
                first_routed.get(record.key, record.timestamp), record.timestamp
            )
    report.routed_duplicates = sum(
        count - 1 for count in Counter(record.event_id for record in routed).values()
    )

    for sent in inputs:
        report.sent[sent.kind] += 1
        found = events_by_identity.get(sent.identity, set())
        if sent.outcome is Outcome.REFUSED:
            report.refused[sent.kind] += 1
            report.refused_but_present += bool(found)
            continue
        report.acked[sent.kind] += 1
        if not found:
            report.lost.append(sent)
        elif len(found) > 1:
            report.split.append(sent)
        if sent.ticket_id is None or sent.ticket_id not in first_routed:
            report.unrouted.append(sent)

    report.effects.update(
        {"alerts": len(alerts), "steps": len(escalations), "mails": len(relayed_message_ids)}
    )
    report.alert_duplicates = duplicated(alerts)
    report.escalation_duplicates = duplicated(escalations)
    report.mail_duplicates = duplicated(relayed_message_ids)
    report.timeline = timeline(inputs, first_routed)
    ordered = sorted(faults, key=lambda fault: fault.at)
    report.recoveries = [
        recovery(
            fault,
            inputs,
            first_routed,
            min(recovery_window, following.at - fault.at) if following else recovery_window,
        )
        for fault, following in zip(ordered, [*ordered[1:], None][: len(ordered)], strict=True)
    ]
    report.baseline_seconds = nearest_rank(
        [
            first_routed[sent.ticket_id] - sent.answered_at
            for sent in inputs
            if sent.outcome is Outcome.ACKED
            and sent.opens_a_ticket
            and sent.ticket_id in first_routed
            and not any(0 <= sent.answered_at - f.at <= recovery_window for f in faults)
        ],
        0.5,
    )
    return report


def timeline(
    inputs: Sequence[Sent], first_routed: dict[str, float], seconds: float = 10.0
) -> list[Slice]:
    if not inputs:
        return []
    origin = min(sent.sent_at for sent in inputs)
    waits: dict[int, list[float]] = {}
    for sent in inputs:
        if sent.outcome is Outcome.ACKED and sent.opens_a_ticket:
            index = int((sent.answered_at - origin) // seconds)
            routed_at = first_routed.get(sent.ticket_id or "")
            waits.setdefault(index, [])
            if routed_at is not None:
                waits[index].append(routed_at - sent.answered_at)
    return [
        Slice(index * seconds, len(found), nearest_rank(found, 0.5), max(found, default=None))
        for index, found in sorted(waits.items())
    ]


def recovery(
    fault: Fault, inputs: Sequence[Sent], first_routed: dict[str, float], window: float
) -> Recovery:
    after = [
        sent
        for sent in inputs
        if sent.outcome is Outcome.ACKED
        and sent.opens_a_ticket
        and fault.at <= sent.answered_at <= fault.at + window
    ]
    waits = [
        first_routed[sent.ticket_id] - sent.answered_at
        for sent in after
        if sent.ticket_id in first_routed
    ]
    return Recovery(
        fault=fault,
        tickets=len(after),
        slowest_seconds=max(waits) if waits else None,
        unrouted=len(after) - len(waits),
    )


def render(report: Report, pause_target_seconds: float = 10.0) -> str:
    """The campaign's report as text."""
    lines = ["inputs      sent   acked  refused"]
    for kind in Kind:
        lines.append(
            f"  {kind.value:<8}{report.sent[kind]:>6}{report.acked[kind]:>8}"
            f"{report.refused[kind]:>9}"
        )
    lines += [
        f"acknowledged inputs lost (no event): {len(report.lost)}",
        f"acknowledged inputs whose ticket was never routed: {len(report.unrouted)}",
        f"acknowledged inputs that became two events: {len(report.split)}",
        f"refused inputs present anyway (the sender would retry): {report.refused_but_present}",
        f"input records written again with the same event_id (redelivery): "
        f"{report.redelivered_events}",
        f"tier-topic records written again with the same event_id (consumers deduplicate): "
        f"{report.routed_duplicates}",
        f"SLA alerts written again (same kind, dedup_key, repeat and event_id; consumers show "
        f"each once): {len(report.alert_duplicates)} of {report.effects['alerts']}",
        f"escalation steps written twice (dedup_key): {len(report.escalation_duplicates)} "
        f"of {report.effects['steps']}",
        f"mails received twice at the relay (Message-ID): {len(report.mail_duplicates)} "
        f"of {report.effects['mails']}",
    ]
    baseline = report.baseline_seconds
    lines.append(
        "ack-to-routed of a new ticket away from faults, p50: "
        + (f"{baseline:.2f} s" if baseline is not None else "none measured")
    )
    lines.append("ack-to-routed of new tickets by 10 s of load (p50, slowest):")
    lines += [
        f"  {piece.start:5.0f} s  {piece.tickets:4d} tickets  "
        + (
            f"{piece.p50:6.2f} s  {piece.slowest:6.2f} s"
            if piece.p50 is not None and piece.slowest is not None
            else "   none routed"
        )
        for piece in report.timeline
    ]
    lines.append(
        f"recovery after each fault (target: routing again within {pause_target_seconds:g} s)"
    )
    for item in report.recoveries:
        slowest = (
            f"{item.slowest_seconds:6.2f} s" if item.slowest_seconds is not None else "   none "
        )
        verdict = (
            "ok"
            if item.slowest_seconds is not None
            and item.slowest_seconds <= pause_target_seconds
            and not item.unrouted
            else "OVER TARGET"
        )
        lines.append(
            f"  {item.fault.name:<22} {item.fault.target:<28} slowest {slowest} over "
            f"{item.tickets} new tickets, {item.unrouted} unrouted  {verdict}"
        )
    for what, found in (("lost", report.lost), ("unrouted", report.unrouted),
                        ("split", report.split)):  # fmt: skip
        lines += [
            f"  {what}: {sent.kind.value} {sent.identity} ticket {sent.ticket_id} "
            f"answered {sent.answer!r} at {sent.answered_at:.3f}"
            for sent in found[:5]
        ]
    failures = report.failures
    lines.append(
        "RESULT: "
        + ("no acknowledged input lost, no effect twice" if not failures else "; ".join(failures))
    )
    return "\n".join(lines)
