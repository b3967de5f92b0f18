"""Running an asyncio service as a process: until SIGINT or SIGTERM, then a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType

from engine.settings import Settings

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def configure_logging(settings: Settings) -> None:
    """The one log setup of every process (``engine smtp``, ``processor``, ``up``...):
    records at ``settings.log_level`` (ENGINE_LOG_LEVEL) and above, in one format, on
    stderr. It replaces whatever handlers an import installed; the faust workers are
    started with ``override_logging=False`` so that faust keeps this setup."""
    level = logging.WARNING if settings.log_level == "WARN" else settings.log_level
    logging.basicConfig(level=level, format=LOG_FORMAT, force=True)


def run_until_signalled(service: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``service(stop)`` in a new loop; SIGINT or SIGTERM sets ``stop``, and the
    service is expected to wind down and return."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await service(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class StopSignal:
    """For the synchronous consumer loops: ``requested`` turns true on SIGINT or SIGTERM,
    so the loop ends after its current batch."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
