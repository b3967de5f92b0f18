"""Telling systemd how a component is doing: the sd_notify protocol, in the standard library.

A unit of ``Type=notify`` starts its process with ``NOTIFY_SOCKET``, the address of an
AF_UNIX datagram socket: a path, or ``@name`` in the abstract namespace. A message is one
datagram of ``KEY=VALUE`` lines (sd_notify(3)); the engine sends three, one a datagram:

- ``READY=1`` once the component serves (``engine.process``, ``engine.kafka.faust_app``);
- ``WATCHDOG=1`` from the component's running loop, every half of ``WATCHDOG_USEC`` (set
  by ``WatchdogSec=``), so a loop that is stuck stops petting and systemd restarts it;
- ``STOPPING=1`` when a stop was asked.

Without ``NOTIFY_SOCKET`` (a terminal, ``engine up``, the tests) nothing is sent. Decision
58 says why this is not a library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"


def socket_address(name: str) -> str | bytes:
    """The address to send to for a ``NOTIFY_SOCKET`` value: a path, or for ``@name`` the
    abstract socket (a leading NUL byte). Raises ValueError for another kind (systemd
    also knows ``vsock:``, for virtual machines)."""
    if name.startswith("@") and len(name) > 1:
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    raise ValueError(f"NOTIFY_SOCKET={name!r}: neither a path nor an abstract socket (@name)")


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds; None without one,
    or when ``WATCHDOG_PID`` names another process (a child that inherited it)."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(usec) / 1_000_000


class SystemdNotifier:
    """Sends sd_notify messages to ``address``; with no address, does nothing."""

    def __init__(self, address: str | bytes | None, watchdog_timeout: float | None = None) -> None:
        self.address = address
        self.watchdog_timeout = watchdog_timeout if address is not None else None
        self._ready = False
        self._stopping = False

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, pid: int | None = None
    ) -> SystemdNotifier:
        environ = os.environ if environ is None else environ
        name = environ.get("NOTIFY_SOCKET", "")
        if not name:
            return cls(None)
        try:
            address = socket_address(name)
        except ValueError as error:
            log.warning("systemd: %s; not telling systemd anything", error)
            return cls(None)
        return cls(address, watchdog_seconds(environ, os.getpid() if pid is None else pid))

    @property
    def watchdog_interval(self) -> float | None:
        """How often to pet the watchdog: half of its timeout, as sd_watchdog_enabled(3)
        advises; None when systemd watches nothing."""
        return None if self.watchdog_timeout is None else self.watchdog_timeout / 2

    def ready(self) -> None:
        """READY=1, once; never after STOPPING=1."""
        if self._ready or self._stopping:
            return
        self._ready = True
        self.send(READY)

    def watchdog(self) -> None:
        """WATCHDOG=1, when systemd watches this process."""
        if self.watchdog_timeout is not None:
            self.send(WATCHDOG)

    def stopping(self) -> None:
        """STOPPING=1, once."""
        if self._stopping:
            return
        self._stopping = True
        self.send(STOPPING)

    def send(self, message: str) -> None:
        """One datagram, without waiting: when systemd's socket is full (it holds a few
        datagrams until read), the message is dropped rather than the component's loop
        stopped. A failure is logged, never raised: a component does not stop serving
        because systemd could not be told (without its WATCHDOG=1, systemd restarts it
        anyway)."""
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as error:
            log.warning("systemd: could not send %s: %s", message, error)


async def pet_watchdog(notifier: SystemdNotifier) -> None:
    """Until cancelled, WATCHDOG=1 every half of the watchdog's timeout. Run as a task of
    the component's own event loop: when the loop is stuck, the petting stops too."""
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
