"""A member killed without leaving its group is taken out of it at once by
``end_memberships_of`` (what ``engine up`` does when a component dies), so its partitions
go to the survivors without waiting for its session to end."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import NewTopic
from kafka.errors import CoordinatorNotAvailableError

from engine.kafka.admin import admin_client
from engine.kafka.membership import described_members, end_memberships_of, member_client_id

PROJECT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
# Longer than the test waits: only the removal can give the dead member's partitions away.
SESSION_MS = 300_000

MEMBER = """
import sys
from engine.kafka.consumer import new_consumer
bootstrap, topic, group = sys.argv[1:4]
consumer = new_consumer(bootstrap, topic, group_id=group,
                        session_timeout_ms={session}, heartbeat_interval_ms=1000)
while True:
    consumer.poll(200)
    print(",".join(str(tp.partition) for tp in sorted(consumer.assignment())), flush=True)
"""


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {seconds:g}s: {what}")


@pytest.fixture
def group_of_two(kafka: str) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    topic, group = f"membership-{uuid.uuid4().hex[:8]}", f"membership-{uuid.uuid4().hex[:8]}"
    with admin_client(kafka) as admin:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    command = [sys.executable, "-c", MEMBER.format(session=SESSION_MS), kafka, topic, group]
    members = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=PROJECT) for _ in range(2)
    ]
    try:
        yield group, members
    finally:
        for member in members:
            member.kill()
            member.wait()
            if member.stdout is not None:
                member.stdout.close()


def members_of(kafka: str, group: str) -> list[str]:
    """The client ids of ``group``'s members (none while its coordinator is being set up)."""
    with admin_client(kafka) as admin:
        try:
            return [m.client_id for m in described_members(admin.describe_groups([group]))]
        except CoordinatorNotAvailableError:
            return []


def test_a_killed_member_is_taken_out_of_its_group_and_the_survivor_takes_everything(
    kafka: str, group_of_two: tuple[str, list[subprocess.Popen[str]]]
) -> None:
    group, (dead, survivor) = group_of_two
    names = sorted(member_client_id(group, pid=member.pid) for member in (dead, survivor))
    wait_until(lambda: sorted(members_of(kafka, group)) == names, 90, "both members joined")

    dead.send_signal(signal.SIGKILL)
    dead.wait()
    removed = end_memberships_of(kafka, dead.pid)

    assert [(m.group, m.client_id) for m in removed] == [
        (group, member_client_id(group, pid=dead.pid))
    ]
    assert members_of(kafka, group) == [member_client_id(group, pid=survivor.pid)]
    everything = ",".join(str(partition) for partition in range(PARTITIONS))
    output = survivor.stdout
    assert output is not None
    wait_until(lambda: output.readline().strip() == everything, 60, "the survivor took everything")


def test_a_process_in_no_group_removes_nothing(kafka: str) -> None:
    assert end_memberships_of(kafka, pid=1, host="no-such-host") == []
