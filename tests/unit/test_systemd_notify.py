"""The sd_notify protocol against a real AF_UNIX datagram socket held by the test, as
systemd holds one: a path socket and an abstract one, the three messages, the watchdog's
interval, and nothing at all without NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.systemd_notify import (
    READY,
    STOPPING,
    WATCHDOG,
    SystemdNotifier,
    pet_watchdog,
    socket_address,
    watchdog_seconds,
)
from tests.notify_socket import NotifySocket


@pytest.fixture
def systemd() -> Iterator[NotifySocket]:
    """A datagram socket bound to a path, as systemd's /run/systemd/notify."""
    with NotifySocket.in_temporary_folder() as held:
        yield held


@pytest.fixture
def abstract_systemd() -> Iterator[NotifySocket]:
    with NotifySocket.abstract(f"engine-test-{secrets.token_hex(8)}") as held:
        yield held


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/42", b"\0/org/freedesktop/systemd1/notify/42"),
        ("@x", b"\0x"),
    ],
)
def test_notify_socket_names_a_path_or_an_abstract_socket(name: str, address: str | bytes) -> None:
    assert socket_address(name) == address


@pytest.mark.parametrize("name", ["vsock:2:1234", "@", "run/notify", " /run/notify"])
def test_another_kind_of_address_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
        socket_address(name)


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 120.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "4242"}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "4243"}, None),  # a parent's watchdog
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "two minutes"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_timeout_is_this_process_s_own(
    environ: dict[str, str], seconds: float | None
) -> None:
    assert watchdog_seconds(environ, pid=4242) == seconds


def test_ready_watchdog_and_stopping_are_one_datagram_each(systemd: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "4000000"}
    )

    notifier.ready()
    notifier.watchdog()
    notifier.watchdog()
    notifier.stopping()

    assert systemd.received(4) == [b"READY=1", b"WATCHDOG=1", b"WATCHDOG=1", b"STOPPING=1"]
    assert systemd.nothing_more()


def test_an_abstract_socket_is_reached_too(abstract_systemd: NotifySocket) -> None:
    assert abstract_systemd.name.startswith("@")
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": abstract_systemd.name})

    notifier.ready()

    assert abstract_systemd.received(1) == [READY.encode()]


def test_ready_and_stopping_are_said_once_and_ready_never_after_stopping(
    systemd: NotifySocket,
) -> None:
    notifier = SystemdNotifier(socket_address(systemd.name))
    notifier.ready()
    notifier.ready()
    notifier.stopping()
    notifier.stopping()
    late = SystemdNotifier(socket_address(systemd.name))
    late.stopping()
    late.ready()

    assert systemd.received(3) == [b"READY=1", b"STOPPING=1", b"STOPPING=1"]
    assert systemd.nothing_more()


def test_no_watchdog_is_petted_when_systemd_watches_none(systemd: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": systemd.name})

    assert notifier.watchdog_interval is None
    notifier.watchdog()
    notifier.stopping()

    assert systemd.received(1) == [STOPPING.encode()]


def test_without_notify_socket_nothing_is_sent(
    systemd: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_socket(*args: object) -> socket.socket:
        raise AssertionError("a socket was opened without NOTIFY_SOCKET")

    notifier = SystemdNotifier.from_environment({"WATCHDOG_USEC": "4000000"})
    monkeypatch.setattr(socket, "socket", no_socket)

    notifier.ready()
    notifier.watchdog()
    notifier.stopping()

    assert notifier.watchdog_interval is None
    assert systemd.nothing_more()


def test_an_address_of_another_kind_turns_the_notifier_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})

    assert notifier.address is None
    assert "vsock:2:1234" in caplog.text


def test_a_socket_that_is_gone_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with tempfile.TemporaryDirectory(prefix="sd-") as folder:
        notifier = SystemdNotifier(str(Path(folder) / "gone"))
        with caplog.at_level(logging.WARNING):
            notifier.ready()

    assert "could not send READY=1" in caplog.text


def test_a_full_socket_drops_the_message_instead_of_stopping_the_component(
    systemd: NotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "4000000"}
    )
    queue = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())

    def pet_more_than_the_socket_holds() -> None:
        for _ in range(queue + 5):
            notifier.watchdog()

    petting = threading.Thread(target=pet_more_than_the_socket_holds, daemon=True)
    with caplog.at_level(logging.WARNING):
        petting.start()
        petting.join(timeout=30)

    assert not petting.is_alive(), "a send waited for systemd to read"
    assert "could not send WATCHDOG=1" in caplog.text
    assert systemd.received(1) == [b"WATCHDOG=1"]  # the socket itself still works


def test_the_watchdog_is_petted_every_half_of_its_timeout_from_the_loop(
    systemd: NotifySocket,
) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "20000"}
    )
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    async def three_pets() -> None:
        petting = asyncio.create_task(pet_watchdog(notifier))
        await asyncio.to_thread(systemd.received, 3)
        petting.cancel()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "sleep", recorded_sleep)
        asyncio.run(three_pets())

    assert notifier.watchdog_interval == 0.01
    assert set(slept) == {0.01}


def test_a_stuck_loop_stops_petting(systemd: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "20000"}
    )

    async def stuck() -> None:
        petting = asyncio.create_task(pet_watchdog(notifier))
        await asyncio.sleep(0)  # the first pet
        # Blocks the loop (as a hung call would) until the test saw that no pet came.
        assert systemd.received(1) == [WATCHDOG.encode()]
        assert systemd.nothing_more(wait_seconds=0.2)
        petting.cancel()

    asyncio.run(stuck())


def test_a_notifier_can_be_made_from_this_process_s_environment(
    systemd: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.name)
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    notifier = SystemdNotifier.from_environment()

    assert notifier.watchdog_interval == 1.5
    notifier.watchdog()
    assert systemd.received(1) == [b"WATCHDOG=1"]
