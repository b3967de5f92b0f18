"""``engine smtp``: the SMTP ingestor as a process, with its own /metrics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from engine import metrics
from engine.clock import SystemClock
from engine.ingest.mail.archive import MailArchive
from engine.ingest.mail.rate_limit import SenderRateLimit
from engine.ingest.mail.security import FileAuthenticator, load_users, tls_context
from engine.ingest.mail.smtp import SupportMailHandler, serve_smtp
from engine.kafka.publisher import KafkaPublisher
from engine.process import configure_logging, run_until_signalled
from engine.settings import Settings


async def smtp_ingestor(settings: Settings, stop: asyncio.Event) -> None:
    publisher = KafkaPublisher(
        settings.kafka_bootstrap, settings.kafka_ack_timeout_seconds, "ticketing-smtp"
    )
    await publisher.start()
    clock = SystemClock()
    rate_limit = SenderRateLimit(settings.smtp_sender_limit_per_minute, timedelta(minutes=1), clock)
    handler = SupportMailHandler(
        publisher,
        settings.support_domains,
        clock,
        f"smtp://{settings.smtp_host}",
        rate_limit=rate_limit,
        archive=MailArchive(settings.smtp_archive_dir) if settings.smtp_archive_dir else None,
    )
    tls = (
        tls_context(settings.smtp_tls_cert, settings.smtp_tls_key)
        if settings.smtp_tls_cert and settings.smtp_tls_key
        else None
    )
    authenticator = (
        FileAuthenticator(load_users(settings.smtp_auth_users_file))
        if settings.smtp_auth_users_file
        else None
    )
    server = await serve_smtp(
        handler,
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_max_message_bytes,
        tls=tls,
        require_tls=settings.smtp_require_tls,
        authenticator=authenticator,
        trusted_relays=tuple(settings.smtp_trusted_relays),
        reuse_port=settings.listen_reuse_port,
    )
    host, port = server.sockets[0].getsockname()[:2]
    metrics_port = metrics.serve_metrics(settings.smtp_metrics_port, settings.metrics_host)
    print(
        f"smtp: listening on {host}:{port} for {', '.join(settings.support_domains)}; "
        f"metrics on http://{settings.metrics_host}:{metrics_port}/metrics",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        await publisher.stop()


def run_smtp_ingestor(settings: Settings) -> None:
    configure_logging(settings)
    run_until_signalled(lambda stop: smtp_ingestor(settings, stop))
