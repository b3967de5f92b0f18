"""``engine api``: the HTTP API as a process, with its own /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from engine import metrics
from engine.api.app import build_app
from engine.api.chat import ChatHub
from engine.api.context import ApiContext
from engine.api.gathering import GatheringPublisher
from engine.api.monitoring import export_forever
from engine.api.security import ChatLimit, RateLimiter, TokenVerifier, load_integrations
from engine.api.view import TicketView, ViewFollower
from engine.clock import Clock, SystemClock
from engine.kafka.publisher import KafkaPublisher, Publisher
from engine.process import configure_logging, run_until_signalled
from engine.settings import Settings
from engine.workers.agents import load_configured
from engine.workers.desk import Desk

log = logging.getLogger(__name__)
# Invalid tokens one address may present a minute before it is told to wait (each costs a
# PBKDF2 check).
FAILED_LOGINS_PER_MINUTE = 20
# How long an idle publisher holds a first event for the concurrent requests' events to
# share its produce request (engine/api/gathering.py); measured in docs/benchmarks.md.
GATHER_HOLD_SECONDS = 0.003


@dataclass
class RunningApi:
    port: int
    context: ApiContext
    follower: ViewFollower


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
    port: int | None = None,
) -> AsyncIterator[RunningApi]:
    """The API serving on ``settings.api_host`` (``port`` overrides the setting; 0: any
    free port), its view following Kafka, until the block ends."""
    clock = clock or SystemClock()
    own_publisher = publisher is None
    kafka = KafkaPublisher(settings.kafka_bootstrap, settings.kafka_ack_timeout_seconds, "api")
    publisher = publisher or GatheringPublisher(kafka, GATHER_HOLD_SECONDS)
    integrations = load_integrations(settings.api_tokens_file) if settings.api_tokens_file else {}
    if not integrations:
        log.warning("api: no tokens configured (ENGINE_API_TOKENS_FILE): every call gets 401")
    hub = ChatHub()
    desk = (
        Desk(
            load_configured(settings.agents_file, settings.sla_calendars_file, settings.rules_file),
            clock.now(),
        )
        if settings.agents_file
        else None
    )
    follower = ViewFollower(
        settings.kafka_bootstrap, TicketView(desk), hub.on_ticket, hub.on_activity
    )
    context = ApiContext(
        publisher=publisher,
        view=follower.view,
        verifier=TokenVerifier(integrations),
        limiter=RateLimiter(
            settings.api_rate_limit_per_minute, settings.api_rate_limit_burst, clock
        ),
        failed_logins=RateLimiter(FAILED_LOGINS_PER_MINUTE, FAILED_LOGINS_PER_MINUTE, clock),
        chat_limit=ChatLimit(
            settings.api_chat_limit_per_conversation, settings.api_chat_limit_per_address, clock
        ),
        clock=clock,
        source=f"http://{settings.api_host}",
        allowed_origins=frozenset(settings.api_allowed_origins),
        max_body_bytes=settings.api_max_body_bytes,
        view_ready=follower.caught_up.is_set,
    )
    if own_publisher:
        await kafka.start()
    following = asyncio.create_task(follower.run())
    runner = web.AppRunner(build_app(context, hub), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.api_host,
        settings.api_port if port is None else port,
        reuse_port=settings.listen_reuse_port or None,
    )
    try:
        await site.start()
        server = cast(asyncio.Server, site._server)  # aiohttp keeps the bound socket private
        yield RunningApi(int(server.sockets[0].getsockname()[1]), context, follower)
    finally:
        await runner.cleanup()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        if own_publisher:
            await kafka.stop()


async def serve_api(settings: Settings, stop: asyncio.Event) -> None:
    async with running_api(settings) as api:
        metrics_port = metrics.serve_metrics(settings.api_metrics_port, settings.metrics_host)
        print(
            f"api: listening on http://{settings.api_host}:{api.port}; "
            f"metrics on http://{settings.metrics_host}:{metrics_port}/metrics",
            flush=True,
        )
        exporting = asyncio.create_task(export_forever(api.follower.view, settings))
        try:
            await stop.wait()
        finally:
            exporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await exporting


def run_api(settings: Settings) -> None:
    configure_logging(settings)
    run_until_signalled(lambda stop: serve_api(settings, stop))
