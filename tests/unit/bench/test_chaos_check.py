"""The fault campaign's checker: what counts as lost, as doubled, and as a pause."""

from __future__ import annotations

from bench.chaos_check import Fault, Kind, Outcome, Record, Sent, check, render


def acked(kind: Kind, identity: str, ticket: str, at: float = 100.0) -> Sent:
    return Sent(kind, identity, at - 0.1, at, Outcome.ACKED, ticket, "250")


def refused(kind: Kind, identity: str) -> Sent:
    return Sent(kind, identity, 99.0, 100.0, Outcome.REFUSED, None, "451")


def event(identity: str, ticket: str, event_id: str | None = None) -> Record:
    return Record(ticket, event_id or f"e-{identity}", identity, ticket)


def routed(ticket: str, at: float = 100.5, event_id: str | None = None) -> Record:
    return Record(ticket, event_id or f"r-{ticket}", "", ticket, at)


def test_every_acknowledged_input_found_and_routed_is_a_clean_run() -> None:
    report = check(
        [acked(Kind.MAIL, "m1", "T-1"), acked(Kind.CHAT, "c1", "T-2")],
        [event("m1", "T-1"), event("c1", "T-2")],
        [routed("T-1"), routed("T-2")],
        alerts=["T-1:UPD-P1:1:1"], escalations=["T-1:UPD-P1:1:1:manager"],
        relayed_message_ids=["ack.t-1@support"],
    )  # fmt: skip
    assert report.failures == []
    assert report.acked == {Kind.MAIL: 1, Kind.CHAT: 1}
    assert "RESULT: no acknowledged input lost" in render(report)


def test_an_acknowledged_input_without_its_event_is_lost_and_a_refused_one_is_not() -> None:
    report = check(
        [acked(Kind.MAIL, "m1", "T-1"), refused(Kind.MAIL, "m2"), refused(Kind.CHAT, "c9")],
        [event("c9", "T-9")],
        [routed("T-1")],
        [], [], [],
    )  # fmt: skip
    assert [sent.identity for sent in report.lost] == ["m1"]
    assert report.refused_but_present == 1
    assert report.failures == ["1 acknowledged inputs have no event"]


def test_an_acknowledged_input_whose_ticket_never_reached_a_tier_is_unrouted() -> None:
    report = check([acked(Kind.INFORM, "7", "T-7")], [event("7", "T-7")], [], [], [], [])
    assert [sent.identity for sent in report.unrouted] == ["7"]
    assert report.failures == ["1 acknowledged inputs' tickets were never routed"]


def test_one_input_as_two_distinct_events_fails_but_a_redelivered_record_is_counted() -> None:
    split = check(
        [acked(Kind.MAIL, "m1", "T-1")],
        [event("m1", "T-1", "e-a"), event("m1", "T-1", "e-b")],
        [routed("T-1")], [], [], [],
    )  # fmt: skip
    assert len(split.split) == 1 and split.failures

    redelivered = check(
        [acked(Kind.MAIL, "m1", "T-1")],
        [event("m1", "T-1"), event("m1", "T-1")],
        [routed("T-1"), routed("T-1")], [], [], [],
    )  # fmt: skip
    assert redelivered.failures == []
    assert (redelivered.redelivered_events, redelivered.routed_duplicates) == (1, 1)


def test_an_escalation_or_a_mail_twice_fails_the_run_and_a_repeated_alert_is_counted() -> None:
    report = check(
        [], [], [],
        alerts=["T-1:UPD-P1:1:1", "T-1:UPD-P1:1:1", "T-1:UPD-P1:1:2"],
        escalations=["k:manager", "k:manager"],
        relayed_message_ids=["a@x", "b@x", "a@x"],
    )  # fmt: skip
    assert report.alert_duplicates == ["T-1:UPD-P1:1:1"]
    assert report.escalation_duplicates == ["k:manager"]
    assert report.mail_duplicates == ["a@x"]
    assert len(report.failures) == 2
    assert "SLA alerts written again" in render(report)
    assert "event_id; consumers show each once): 1 of 3" in render(report)


def test_a_faults_pause_is_the_slowest_new_ticket_acknowledged_after_it() -> None:
    fault = Fault("kill processor", 100.0, "pid 1")
    inputs = [
        acked(Kind.MAIL, "before", "T-0", at=90.0),
        acked(Kind.MAIL, "m1", "T-1", at=101.0),
        acked(Kind.CHAT, "c1", "T-2", at=102.0),
        acked(Kind.REPLY, "r1", "T-1", at=103.0),  # no new ticket: not a measure of routing
        acked(Kind.MAIL, "late", "T-3", at=140.0),  # outside the window
    ]
    report = check(
        inputs,
        [event(s.identity, s.ticket_id or "") for s in inputs],
        [routed("T-0", 90.2), routed("T-1", 108.0), routed("T-2", 104.0), routed("T-3", 140.1)],
        [], [], [], faults=[fault], recovery_window=30.0,
    )  # fmt: skip
    (recovery,) = report.recoveries
    assert (recovery.tickets, recovery.slowest_seconds, recovery.unrouted) == (2, 7.0, 0)
    assert report.baseline_seconds is not None and round(report.baseline_seconds, 3) == 0.1
    assert "OVER TARGET" not in render(report, pause_target_seconds=10.0)
    assert "OVER TARGET" in render(report, pause_target_seconds=5.0)
