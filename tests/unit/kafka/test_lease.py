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
        self.listener: Any = None
        self.topic = ""
        self.closed = False

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topic, self.listener = topics[0], listener

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, Any]:
        time.sleep(0.01)
        if self.fails:
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
        members.append(Member(fails=len(members) < 2))
        return members[-1]

    monkeypatch.setattr(lease_module, "new_member", new_member)
    monkeypatch.setattr(lease_module, "REJOIN_SECONDS", 0.01)
    caplog.set_level(logging.WARNING, logger=lease_module.__name__)
    lease = BlockingLease("127.0.0.1:1", "group", "lease-topic")
    given_up_at = time.monotonic() + 30
    try:
        assert lease.wait_held(lambda: time.monotonic() > given_up_at, poll_seconds=0.01)
    finally:
        lease.close()

    assert len(members) == 3
    assert all(member.closed for member in members)
    failures = [r for r in caplog.records if "member failed" in r.getMessage()]
    # said once for the two failures in a row, without a traceback: it is Kafka's
    assert len(failures) == 1
    assert not failures[0].exc_info
    assert "KafkaConnectionError" in failures[0].getMessage()
