"""What a process tells systemd through ``engine.process``: an asyncio service is READY=1
once it awaits its stop, its loop pets the watchdog, SIGTERM says STOPPING=1; a
synchronous loop is READY=1 after its first batch and pets at most once a second."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Iterator

import pytest

from engine.process import PET_AT_MOST_EVERY_SECONDS, ServiceStop, StopSignal, run_until_signalled
from engine.systemd_notify import SystemdNotifier
from tests.notify_socket import NotifySocket


@pytest.fixture
def systemd() -> Iterator[NotifySocket]:
    with NotifySocket.in_temporary_folder() as held:
        yield held


@pytest.fixture(autouse=True)
def signal_handlers_restored() -> Iterator[None]:
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_a_service_is_ready_once_it_serves_and_pets_until_sigterm(systemd: NotifySocket) -> None:
    notifier = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": systemd.name, "WATCHDOG_USEC": "20000"}
    )
    before_serving: list[bytes] = []
    served: list[bool] = []

    async def service(stop: ServiceStop) -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        while (datagram := systemd.next(timeout=0)) is not None:  # before it serves
            before_serving.append(datagram)
        watching = asyncio.create_task(asyncio.to_thread(_ready_then_two_pets, systemd))
        await stop.wait()  # serving: READY=1
        served.append(await watching)
        server.close()

    def _ready_then_two_pets(held: NotifySocket) -> bool:
        while held.received(1) != [b"READY=1"]:
            pass
        assert held.received(2) == [b"WATCHDOG=1", b"WATCHDOG=1"]
        os.kill(os.getpid(), signal.SIGTERM)
        return True

    run_until_signalled(service, notifier)

    assert b"READY=1" not in before_serving
    assert served == [True]
    after = [systemd.received(1)[0]]
    while after[-1] != b"STOPPING=1":
        assert after[-1] == b"WATCHDOG=1", after
        after += systemd.received(1)
    assert b"READY=1" not in after


def test_sigint_stops_a_service_too(systemd: NotifySocket) -> None:
    notifier = SystemdNotifier(systemd.name)

    async def service(stop: ServiceStop) -> None:
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGINT)
        await stop.wait()

    run_until_signalled(service, notifier)

    assert systemd.received(2) == [b"READY=1", b"STOPPING=1"]
    assert systemd.nothing_more()


def test_a_service_that_never_waits_says_when_it_serves(systemd: NotifySocket) -> None:
    notifier = SystemdNotifier(systemd.name)

    async def service(stop: ServiceStop) -> None:
        stop.serving()
        stop.serving()

    run_until_signalled(service, notifier)

    assert systemd.received(1) == [b"READY=1"]
    assert systemd.nothing_more()


def test_a_loop_is_ready_after_its_first_batch_and_pets_at_most_once_a_second(
    systemd: NotifySocket,
) -> None:
    now = [100.0]
    stop = StopSignal(
        SystemdNotifier(systemd.name, watchdog_timeout=120.0), monotonic=lambda: now[0]
    )

    stop.alive()
    assert systemd.received(2) == [b"READY=1", b"WATCHDOG=1"]
    now[0] += PET_AT_MOST_EVERY_SECONDS / 2
    stop.alive()
    assert systemd.nothing_more()
    now[0] += PET_AT_MOST_EVERY_SECONDS / 2
    stop.alive()
    assert systemd.received(1) == [b"WATCHDOG=1"]

    assert not stop.requested
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.requested
    assert systemd.received(1) == [b"STOPPING=1"]
    now[0] += PET_AT_MOST_EVERY_SECONDS
    stop.alive()  # the loop's last batch
    assert systemd.received(1) == [b"WATCHDOG=1"]
    assert systemd.nothing_more()


def test_without_systemd_a_stop_signal_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def no_socket(*args: object) -> socket.socket:
        raise AssertionError("a socket was opened without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_socket)
    stop = StopSignal()
    stop.alive()
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.requested
