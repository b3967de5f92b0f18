"""Counting the alerts already on the topic into an obligation's progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.contract import SlaAlertData, SlaProgress
from engine.sla.alerts import progress_with_sent

KEY = "T-A:UPD-P1:1"
DEADLINE = datetime(2026, 12, 7, 10, tzinfo=UTC)


def alert(repeat: int, key: str = KEY, deadline: datetime = DEADLINE) -> SlaAlertData:
    return SlaAlertData(
        ticket_id="T-A", obligation="UPD-P1", instance=1, dedup_key=key, deadline=deadline,
        calendar="24x7 (UTC)", explanation="", repeat=repeat,
    )  # fmt: skip


def test_a_warning_sent_counts_as_warned() -> None:
    assert progress_with_sent(SlaProgress(key=KEY), [alert(0)]) == SlaProgress(key=KEY, warned=True)


def test_the_latest_breach_sent_counts_with_its_deadline_whatever_the_order_read() -> None:
    later = DEADLINE + timedelta(hours=1)
    found = progress_with_sent(SlaProgress(key=KEY), [alert(2, deadline=later), alert(1)])
    assert found == SlaProgress(key=KEY, warned=True, breaches=2, last_breach_at=later)


def test_alerts_the_progress_counts_already_or_of_another_instance_change_nothing() -> None:
    progress = SlaProgress(key=KEY, warned=True, breaches=2, last_breach_at=DEADLINE)
    assert progress_with_sent(progress, [alert(0), alert(1), alert(3, key="T-A:UPD-P1:2")]) == (
        progress
    )
