"""systemd's end of the sd_notify protocol, for tests: an AF_UNIX datagram socket the test
binds (to a path, or in the abstract namespace) and reads, as the service manager does."""

from __future__ import annotations

import contextlib
import select
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

DATAGRAM_BYTES = 4096


class NotifySocket:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name  # the NOTIFY_SOCKET value a process is given

    @classmethod
    @contextlib.contextmanager
    def at_path(cls, path: Path) -> Iterator[NotifySocket]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            yield cls(sock, str(path))

    @classmethod
    @contextlib.contextmanager
    def in_temporary_folder(cls) -> Iterator[NotifySocket]:
        """Bound to a path in a new folder under /tmp (a socket's path is < 108 bytes)."""
        with (
            tempfile.TemporaryDirectory(prefix="sd-") as folder,
            cls.at_path(Path(folder) / "notify") as held,
        ):
            yield held

    @classmethod
    @contextlib.contextmanager
    def abstract(cls, name: str) -> Iterator[NotifySocket]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(b"\0" + name.encode())
            yield cls(sock, "@" + name)

    def next(self, timeout: float = 60) -> bytes | None:
        """The next datagram, or None when none came within ``timeout`` seconds."""
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return self.sock.recv(DATAGRAM_BYTES) if readable else None

    def received(self, count: int, timeout: float = 60) -> list[bytes]:
        """The next ``count`` datagrams; fails naming those that came when fewer did."""
        got: list[bytes] = []
        while len(got) < count:
            datagram = self.next(timeout)
            if datagram is None:
                raise AssertionError(f"{len(got)} of {count} datagrams in {timeout:g}s: {got}")
            got.append(datagram)
        return got

    def nothing_more(self, wait_seconds: float = 0) -> bool:
        """True when no datagram waits (or comes within ``wait_seconds``)."""
        return self.next(wait_seconds) is None
