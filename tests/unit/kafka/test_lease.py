"""The entitlements ledger's lease (a kafka-python member polled by a thread of its own)
outlives a member that Kafka fails: it gives the lease up and joins again."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError

from engine.kafka import lease as lease_module
from engine.kafka.lease import BlockingLease


class Member:
    """A member whose ``poll`` either fails as kafka-python does without a broker, or is
    given partition 0 of the lease's topic."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.fails_after: int | None = None
        self.polls = 0
        self.listener: Any = None
        self.topic = ""
        self.closed = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topic, self.listener = topics[0], listener

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        time.sleep(0.01)
        self.polls += 1
        if self.fails or (self.fails_after is not None and self.polls > self.fails_after):
            raise KafkaConnectionError("111 ECONNREFUSED")
        self.listener.on_partitions_assigned([TopicPartition(self.topic, 0)])
        return {}

    def close(self) -> None:
        self.closed = True


def test_a_member_kafka_fails_gives_the_lease_up_and_the_next_one_takes_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    members: list[Member] = []

    def new_member(bootstrap: str, group_id: str) -> Member:
        # two fail in a row, the third joins and then fails too, the fourth joins
        members.append(Member(fails=len(members) in (0, 1)))
        if len(members) == 3:
            members[-1].fails_after = 3
        return members[-1]

    monkeypatch.setattr(lease_module, "new_member", new_member)
    monkeypatch.setattr(lease_module, "REJOIN_SECONDS", 0.01)
    caplog.set_level(logging.WARNING, logger=lease_module.__name__)
    lease = BlockingLease("127.0.0.1:1", "group", "lease-topic")
    given_up_at = time.monotonic() + 30

    def held() -> bool:
        return lease.wait_held(lambda: time.monotonic() > given_up_at, poll_seconds=0.01)

    try:
        assert held()
        while len(members) < 4 and time.monotonic() < given_up_at:
            time.sleep(0.01)
        assert held()
    finally:
        lease.close()

    assert len(members) == 4
    assert all(member.closed for member in members)
    failures = [r for r in caplog.records if "member failed" in r.getMessage()]
    # said once for the two failures in a row and once for the later one, without a
    # traceback: they are Kafka's
    assert len(failures) == 2
    assert not any(failure.exc_info for failure in failures)
    assert all("KafkaConnectionError" in failure.getMessage() for failure in failures)
