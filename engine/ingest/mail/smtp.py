"""The SMTP ingestor: an aiosmtpd handler whose 250 means "your mail is on Kafka".

Replies, and why:
- 250 only after Kafka acknowledged the mail, whole, on the mail spool (``email.spooled``
  under the ticket its headers name); the mail parser reads it downstream into an
  ``email.received`` event, or a dead letter (mail_spool.py, decision 0040);
- 451 4.3.0 when Kafka is unreachable or slow past the bound, and for any unexpected
  error: the sender keeps the mail and retries (aiosmtpd would say a permanent 500);
- 550 5.7.1 for recipients outside the support domains: this is no open relay;
- 552 for mail over the size limit (aiosmtpd checks SIZE at MAIL FROM and after DATA),
  and 552 5.3.4 for a header section over its limits (size, number of fields); 500 for a
  line over 64 KiB (RFC 5321 says 1000 octets, but web forms send longer lines);
- 451 4.7.1 at the end of DATA for a client over its rate limit for that sender: slowed
  down, nothing lost. The limit is kept per client address and sender, and taken only by
  a mail accepted, so nobody can spend another client's allowance (MAIL FROM + RSET);
- 421 4.7.0 and the connection closed at the third failed AUTH on one connection;
- XFORWARD (Postfix in front) is announced to and taken from the trusted relays only
  (ENGINE_SMTP_TRUSTED_RELAYS): the forwarded client address is then the mail's ``peer``
  and its rate-limit key, and the relay is kept beside it. Anyone else gets 550 5.7.0.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import datetime
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from engine import metrics
from engine.clock import Clock
from engine.contract import to_json
from engine.contract.addresses import is_one_address
from engine.contract.topics import MAIL_SPOOL
from engine.errors import PublishError
from engine.ingest.mail.archive import MailArchive
from engine.ingest.mail.automated import header_problem
from engine.ingest.mail.identity import mail_identity
from engine.ingest.mail.rate_limit import SenderRateLimit
from engine.ingest.mail.security import FileAuthenticator
from engine.ingest.mail.spool import spooled_mail
from engine.ingest.mail.xforward import (
    ANNOUNCEMENT,
    Network,
    SmtpClient,
    XforwardError,
    is_trusted,
    parse_xforward,
    smtp_client,
)
from engine.kafka.publisher import Publisher
from engine.metrics import IngestOutcome, IngestReason, IngestSource

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
MAX_FAILED_AUTH = 3
TOO_MANY_FAILED_AUTH = "421 4.7.0 Too many failed authentication attempts; closing"
RETRY_LATER = "451 4.3.0 Mail not stored: the ticket queue is unavailable, please retry later"
XFORWARD_REFUSED = "550 5.7.0 Error: insufficient authorization for XFORWARD"
SOURCE = IngestSource.EMAIL


NULL_SENDERS = frozenset({"", "<>"})  # the sender of bounces, as aiosmtpd hands it over


class SupportMailHandler:
    def __init__(
        self,
        publisher: Publisher,
        support_domains: list[str],
        clock: Clock,
        source: str,
        rate_limit: SenderRateLimit | None = None,
        archive: MailArchive | None = None,
    ) -> None:
        self._archive = archive
        self._rate_limit = rate_limit
        self._publisher = publisher
        self._domains = frozenset(support_domains)
        self._clock = clock
        self._source = source

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if address not in NULL_SENDERS and not is_one_address(address):
            metrics.EVENTS_INGESTED.labels(
                SOURCE, IngestOutcome.REJECTED, IngestReason.BAD_SENDER
            ).inc()
            return (
                "553 5.1.7 The sender address is not one mailbox a reply can reach "
                "(white space, a control character or a separator)"
            )
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain not in self._domains:
            metrics.EVENTS_INGESTED.labels(
                SOURCE, IngestOutcome.REJECTED, IngestReason.RELAY_DENIED
            ).inc()
            return f"550 5.7.1 Relaying denied: {domain or 'that address'} is not served here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if isinstance(server, SupportSMTP) and server.relay_trusted:
            responses.insert(-1, f"250-{ANNOUNCEMENT}")
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        received_at = self._clock.now()
        client = _client(session, envelope)
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        too_large = header_problem(raw)
        if too_large is not None:
            metrics.EVENTS_INGESTED.labels(
                SOURCE, IngestOutcome.REJECTED, IngestReason.HEADER_TOO_LARGE
            ).inc()
            return f"552 5.3.4 Message header too large: {too_large}"
        # A null sender (bounces) is limited by the client's address alone.
        limit_key = f"{client.address} {_reverse_path(envelope.mail_from) or '<>'}"
        if self._rate_limit is not None and not self._rate_limit.allow(limit_key):
            metrics.EVENTS_INGESTED.labels(
                SOURCE, IngestOutcome.REJECTED, IngestReason.RATE_LIMITED
            ).inc()
            return "451 4.7.1 Too many messages from this sender; please retry later"
        accepted, reply = False, RETRY_LATER
        try:
            accepted, reply = await self._store(raw, client, envelope, received_at)
        finally:
            if not accepted and self._rate_limit is not None:
                self._rate_limit.give_back(limit_key)
        return reply

    async def _store(
        self, raw: bytes, client: SmtpClient, envelope: Envelope, received_at: datetime
    ) -> tuple[bool, str]:
        """Archive (when configured) and spool the mail: (accepted, the reply)."""
        identity = mail_identity(raw)
        archived = False
        if self._archive is not None:
            try:
                await self._archive.store(raw)
            except OSError as error:
                log.error("mail archive %s: %s", self._archive.root, error)
                metrics.EVENTS_INGESTED.labels(
                    SOURCE, IngestOutcome.REJECTED, IngestReason.ARCHIVE_UNAVAILABLE
                ).inc()
                return False, (
                    "451 4.3.0 Mail not stored: the mail archive is unavailable, please retry"
                )
            archived = True
        record = spooled_mail(
            raw,
            identity,
            mail_from=_reverse_path(envelope.mail_from),
            rcpt_to=tuple(envelope.rcpt_tos),
            peer=client.address,
            relay=client.relay,
            received_at=received_at,
            source=self._source,
            archived=archived,
        )
        try:
            await self._publisher.publish(MAIL_SPOOL, identity.ticket_id.encode(), to_json(record))
        except PublishError as error:
            log.warning("mail from %s not stored: %s", client.address, error)
            metrics.EVENTS_INGESTED.labels(
                SOURCE, IngestOutcome.REJECTED, IngestReason.KAFKA_UNAVAILABLE
            ).inc()
            return False, RETRY_LATER
        elapsed = (self._clock.now() - received_at).total_seconds()
        metrics.INGEST_ACK_SECONDS.labels(SOURCE).observe(max(0.0, elapsed))
        metrics.EVENTS_INGESTED.labels(SOURCE, IngestOutcome.ACCEPTED, IngestReason.NONE).inc()
        return True, f"250 2.0.0 Accepted for ticket {identity.ticket_id}"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("unexpected error in the SMTP ingestor", exc_info=error)
        metrics.EVENTS_INGESTED.labels(
            SOURCE, IngestOutcome.REJECTED, IngestReason.INTERNAL_ERROR
        ).inc()
        return RETRY_LATER


class SupportSMTP(SMTP):
    """aiosmtpd's SMTP, taking data lines longer than RFC 5321's 1000 octets: web forms and
    some mailers send a whole HTML body on one line, and Postfix accepts them too.
    Command lines keep aiosmtpd's own (much smaller) limits.

    It also remembers the addresses of MAIL FROM and RCPT TO as aiosmtpd parsed them:
    aiosmtpd reads each with the ``email`` package's RFC 5322 parser (and defines a class
    on every call), about a seventh of the ingestor's CPU, while a desk hears from the
    same customers and writes to the same few mailboxes all day."""

    line_length_limit = MAX_LINE_BYTES

    def __init__(
        self,
        handler: Any,
        *,
        authenticator: FileAuthenticator | None = None,
        trusted_relays: tuple[Network, ...] = (),
        **options: Any,
    ) -> None:
        super().__init__(handler, **options)
        self._trusted_relays = trusted_relays
        self._file_authenticator = authenticator
        self._credentials: LoginPassword | None = None
        self._failed_auth = 0

    @property
    def relay_trusted(self) -> bool:
        """Whether this connection comes from a relay trusted to name its clients."""
        return self.session is not None and is_trusted(_peer(self.session), self._trusted_relays)

    def _create_envelope(self) -> RelayedEnvelope:
        return RelayedEnvelope()

    @syntax("XFORWARD attribute=value ...", when="relay_trusted")
    async def smtp_XFORWARD(self, arg: str | None) -> None:
        if not self.relay_trusted:
            metrics.EVENTS_INGESTED.labels(
                SOURCE, IngestOutcome.REJECTED, IngestReason.XFORWARD_DENIED
            ).inc()
            await self.push(XFORWARD_REFUSED)
            return
        envelope = self.envelope
        if not isinstance(envelope, RelayedEnvelope) or envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: MAIL transaction in progress")
            return
        try:
            envelope.forwarded.update(parse_xforward(arg))
        except XforwardError as error:
            await self.push(f"501 5.5.4 {error}")
            return
        await self.push("250 2.0.0 Ok")

    # AUTH: aiosmtpd's auth_PLAIN and auth_LOGIN read the credentials and call
    # _authenticate, synchronously, on the loop; here _authenticate only keeps them and
    # the check is awaited in a thread. The third failure on a connection closes it.

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        self._credentials = auth_data if isinstance(auth_data, LoginPassword) else None
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._checked(await super().auth_PLAIN(server, args))

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        return await self._checked(await super().auth_LOGIN(server, args))

    async def _checked(self, read: AuthResult) -> AuthResult:
        credentials, self._credentials = self._credentials, None
        if credentials is None:  # aiosmtpd already answered (bad base64, aborted)
            return read
        checker = self._file_authenticator
        if checker is not None and await checker.check(credentials):
            return AuthResult(success=True, auth_data=credentials.login.decode())
        self._failed_auth += 1
        if self._failed_auth < MAX_FAILED_AUTH:
            return AuthResult(success=False, handled=False)
        metrics.EVENTS_INGESTED.labels(
            SOURCE, IngestOutcome.REJECTED, IngestReason.AUTH_FAILED
        ).inc()
        return AuthResult(success=False, handled=False, message=TOO_MANY_FAILED_AUTH)

    async def smtp_AUTH(self, arg: str) -> None:
        await super().smtp_AUTH(arg)
        if self._failed_auth >= MAX_FAILED_AUTH and self.transport is not None:
            self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        parsed = _PARSED_ADDRESSES.get(arg)
        if parsed is None:
            parsed = super()._getaddr(arg)  # depends on arg alone: local_part_limit is unset
            if len(_PARSED_ADDRESSES) >= MAX_PARSED_ADDRESSES:
                _PARSED_ADDRESSES.clear()
            _PARSED_ADDRESSES[arg] = parsed
        return parsed


class RelayedEnvelope(Envelope):
    """An envelope that also holds what a trusted relay forwarded by XFORWARD for this
    mail; aiosmtpd makes a new envelope after each mail and at RSET, which is when
    XFORWARD's attributes end."""

    def __init__(self) -> None:
        super().__init__()
        self.forwarded: dict[str, str] = {}


MAX_PARSED_ADDRESSES = 8192
_PARSED_ADDRESSES: dict[str, tuple[str | None, str | None]] = {}


def _reverse_path(address: str | None) -> str:
    """The envelope sender; "" for the null reverse-path of bounces (MAIL FROM:<>), which
    aiosmtpd gives as "<>" (and must keep so, to know MAIL was given)."""
    return "" if not address or address.strip() == "<>" else address


def _client(session: Session, envelope: Envelope) -> SmtpClient:
    forwarded = envelope.forwarded if isinstance(envelope, RelayedEnvelope) else {}
    return smtp_client(_peer(session), forwarded)


def _peer(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


async def serve_smtp(
    handler: SupportMailHandler,
    host: str,
    port: int,
    max_message_bytes: int,
    hostname: str = "ticketing-engine",
    tls: ssl.SSLContext | None = None,
    require_tls: bool = False,
    authenticator: FileAuthenticator | None = None,
    trusted_relays: tuple[Network, ...] = (),
    reuse_port: bool = False,
) -> asyncio.Server:
    """Serve SMTP from the running loop (not aiosmtpd's threaded Controller).

    With ``tls``, STARTTLS is offered (and required before MAIL with ``require_tls``);
    with an ``authenticator``, AUTH is offered after STARTTLS only; XFORWARD to the
    ``trusted_relays`` only."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SupportSMTP(
            handler,
            data_size_limit=max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="ticketing-engine ESMTP",
            loop=loop,
            tls_context=tls,
            require_starttls=require_tls,
            authenticator=authenticator,
            auth_require_tls=True,
            trusted_relays=trusted_relays,
        ),
        host=host,
        port=port,
        reuse_port=reuse_port,
    )
