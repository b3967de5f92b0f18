"""Running a component as a process: until SIGINT or SIGTERM, then a clean stop; and
telling systemd (``Type=notify``) when it serves, that its loop runs, and that it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Literal

from engine.outage_log import KafkaOutageFilter, bootstrap_servers
from engine.settings import Settings
from engine.systemd_notify import SystemdNotifier, pet_watchdog

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"
# A synchronous loop pets the watchdog after a batch, at most this often.
PET_AT_MOST_EVERY_SECONDS = 1.0


class RepeatQuieter(logging.Filter):
    """Lets one record of a kind through per ``window_seconds``, and says how many of that
    kind it held back when the next one passes.

    A kind is the logger, level, message template and arguments. Kafka clients log the
    same line hundreds of times a second while a broker is away (kafka-python marks a
    coordinator dead on every lookup until the cluster fences it); the log should say so
    once in a while, not bury everything else.
    """

    def __init__(self, window_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window = window_seconds
        self._clock = clock
        self._seen: dict[tuple[str, int, str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg), repr(record.args))
        now = self._clock()
        last, held = self._seen.get(kind, (float("-inf"), 0))
        if now - last < self._window:
            self._seen[kind] = (last, held + 1)
            return False
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f}s]"
        return True


def configure_logging(settings: Settings) -> None:
    """The one log setup of every process (``engine smtp``, ``processor``, ``up``...):
    records at ``settings.log_level`` (ENGINE_LOG_LEVEL) and above, in one format, on
    stderr; the Kafka clients' complaints held back while Kafka is away
    (``KafkaOutageFilter``), and a line repeated within 10 s said once (``RepeatQuieter``).
    It replaces whatever handlers an import installed; the faust workers are started with
    ``override_logging=False`` so that faust keeps this setup."""
    level = logging.WARNING if settings.log_level == "WARN" else settings.log_level
    logging.basicConfig(level=level, format=LOG_FORMAT, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(KafkaOutageFilter(handler, bootstrap_servers(settings.kafka_bootstrap)))
        handler.addFilter(RepeatQuieter())


class ServiceStop(asyncio.Event):
    """The stop of an asyncio service: set on SIGINT or SIGTERM (and STOPPING=1 sent).

    A service awaits ``stop.wait()`` once it serves (its listener bound, its clients
    started), so its first ``wait()`` tells systemd READY=1. A service that never waits
    on it calls ``serving()`` when it is ready."""

    def __init__(self, notifier: SystemdNotifier) -> None:
        super().__init__()
        self._notifier = notifier

    def serving(self) -> None:
        self._notifier.ready()

    async def wait(self) -> Literal[True]:
        self.serving()
        return await super().wait()

    def request(self) -> None:
        self._notifier.stopping()
        self.set()


def run_until_signalled(
    service: Callable[[ServiceStop], Awaitable[None]], notifier: SystemdNotifier | None = None
) -> None:
    """Run ``service(stop)`` in a new loop; SIGINT or SIGTERM sets ``stop``, and the
    service is expected to wind down and return. Under systemd, a task of the same loop
    pets the watchdog while the service runs."""
    notifier = notifier or SystemdNotifier.from_environment()

    async def main() -> None:
        stop = ServiceStop(notifier)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.request)
        petting = asyncio.create_task(pet_watchdog(notifier))
        try:
            await service(stop)
        finally:
            petting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await petting

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class StopSignal:
    """For the synchronous consumer loops: ``requested`` turns true on SIGINT or SIGTERM,
    so the loop ends after its current batch. The loop calls ``alive()`` after each batch
    (or each empty poll): the first call tells systemd READY=1, then each pets its
    watchdog, at most every ``PET_AT_MOST_EVERY_SECONDS``."""

    def __init__(
        self,
        notifier: SystemdNotifier | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.requested = False
        self._notifier = notifier or SystemdNotifier.from_environment()
        self._monotonic = monotonic
        self._last_pet: float | None = None
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def alive(self) -> None:
        self._notifier.ready()
        now = self._monotonic()
        if self._last_pet is None or now - self._last_pet >= PET_AT_MOST_EVERY_SECONDS:
            self._notifier.watchdog()
            self._last_pet = now

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self._notifier.stopping()
