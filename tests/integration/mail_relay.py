"""A real SMTP relay on loopback (aiosmtpd) that records what the notifier hands it."""

from __future__ import annotations

import asyncio
import contextlib
import email
import threading
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.integration.harness import free_port


class RecordingRelay:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelope_recipients: list[list[str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw, policy=policy.default))
        self.envelope_recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def first(self, condition: Callable[[EmailMessage, list[str]], bool]) -> EmailMessage | None:
        """The first message received so far that meets ``condition`` (message, RCPT TO)."""
        deliveries = zip(list(self.messages), list(self.envelope_recipients), strict=False)
        return next((m for m, to in deliveries if condition(m, to)), None)


@contextlib.contextmanager
def serving_relay() -> Iterator[tuple[RecordingRelay, int]]:
    """A recording relay on a free loopback port, served from its own thread."""
    handler = RecordingRelay()
    loop = asyncio.new_event_loop()
    port = free_port()
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", port)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield handler, port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


@pytest.fixture
def relay() -> Iterator[tuple[RecordingRelay, int]]:
    with serving_relay() as served:
        yield served
