"""Group members named after their process, found again by host and pid
(engine.kafka.membership), and ``engine up`` ending a dead component's memberships."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from engine import supervisor
from engine.errors import ProvisioningError
from engine.kafka import consumer
from engine.kafka.consumer import new_aio_group_consumer, new_consumer
from engine.kafka.membership import (
    GroupMember,
    described_members,
    member_client_id,
    members_of_process,
)
from engine.supervisor import Component, end_memberships_quietly


def test_a_client_is_named_after_its_group_host_and_process() -> None:
    assert member_client_id("ticketing-engine", "pbx-01.example", 4242) == (
        "ticketing-engine-pbx-01.example-4242"
    )


def test_a_host_name_is_kept_to_what_a_client_id_may_hold() -> None:
    assert member_client_id("g", "my host/1", 7) == "g-my_host_1-7"


def test_the_members_of_one_process_are_found_in_every_group() -> None:
    members = [
        GroupMember("engine", "engine-a-41-1f", member_client_id("engine", "a", 41)),
        GroupMember("engine-sla", "engine-sla-a-41-2e", member_client_id("engine-sla", "a", 41)),
        GroupMember("engine", "engine-a-42-3d", member_client_id("engine", "a", 42)),
        GroupMember("engine", "engine-b-41-4c", member_client_id("engine", "b", 41)),
        GroupMember("engine", "engine-a-141-5b", member_client_id("engine", "a", 141)),
        GroupMember("other", "faust-0.15.3-6a", "faust-0.15.3"),
    ]
    assert members_of_process(members, "a", 41) == members[:2]


def test_a_described_group_gives_its_members() -> None:
    described: dict[str, dict[str, Any]] = {
        "engine": {
            "group_state": "Stable",
            "members": [
                {"member_id": "engine-a-41-1f", "client_id": "engine-a-41", "client_host": "/::1"},
                {"member_id": "engine-a-42-2e", "client_id": "engine-a-42"},
            ],
        },
        "empty": {"group_state": "Empty", "members": []},
    }
    assert described_members(described) == [
        GroupMember("engine", "engine-a-41-1f", "engine-a-41"),
        GroupMember("engine", "engine-a-42-2e", "engine-a-42"),
    ]


def test_the_group_consumers_are_named_after_their_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(consumer, "KafkaConsumer", lambda *topics, **config: made.append(config))
    new_consumer("127.0.0.1:9", "t", group_id="g")
    new_consumer("127.0.0.1:9", "t")
    assert made[0]["client_id"] == member_client_id("g")
    assert "client_id" not in made[1]  # in no group: kafka-python's own name

    async def aio_client_id() -> str:
        consumer = new_aio_group_consumer("127.0.0.1:9", "g")
        try:
            return str(consumer._client._client_id)
        finally:
            await consumer.stop()

    assert asyncio.run(aio_client_id()) == member_client_id("g")


def test_a_component_that_dies_is_reported_with_its_pid_and_one_running_is_not() -> None:
    exits: list[tuple[str, int]] = []
    component = Component("processor", {}, replica=1, on_exit=lambda *seen: exits.append(seen))
    component.command = [sys.executable, "-c", "import sys; sys.exit(3)"]
    component.start()
    assert component.process is not None
    pid = component.process.pid
    component.process.wait()
    component.check(0.0)
    assert exits == [("processor#2", pid)]

    component.command = [sys.executable, "-c", "import time; time.sleep(30)"]
    component.start()
    try:
        component.check(0.0)
        assert exits == [("processor#2", pid)]
    finally:
        component.stop()
        assert component.process is not None
        component.process.wait(timeout=10)


def test_a_cluster_that_does_not_answer_leaves_the_memberships_to_their_sessions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_answer(bootstrap: str, pid: int) -> list[GroupMember]:
        raise ProvisioningError(f"Kafka at {bootstrap} does not answer")

    monkeypatch.setattr(supervisor, "end_memberships_of", no_answer)
    end_memberships_quietly("127.0.0.1:9", 4242, "processor#2")
    assert capsys.readouterr().out == (
        "up: processor#2's group memberships not ended at once (Kafka at 127.0.0.1:9 does not "
        "answer); its sessions will end them\n"
    )


def test_the_members_removed_are_said_by_group(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def removed(bootstrap: str, pid: int) -> list[GroupMember]:
        return [GroupMember("engine", "m1", "c1"), GroupMember("engine-sla", "m2", "c2")]

    monkeypatch.setattr(supervisor, "end_memberships_of", removed)
    end_memberships_quietly("127.0.0.1:9", 4242, "processor")
    assert capsys.readouterr().out == (
        "up: processor's group memberships ended at once: engine, engine-sla\n"
    )
