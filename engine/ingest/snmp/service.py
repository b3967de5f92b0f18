"""``engine snmp``: the SNMP receiver as a process, with its own /metrics."""

from __future__ import annotations

import asyncio
import contextlib

from engine import metrics
from engine.clock import SystemClock
from engine.contract.topics import SNMP_TRAPS
from engine.ingest.snmp.devices import load_devices
from engine.ingest.snmp.mibs import MibResolver
from engine.ingest.snmp.receiver import (
    BatchPublisher,
    ReceiverPolicy,
    SnmpReceiver,
    engine_id_option,
)
from engine.ingest.snmp.replay import TrapBacklog
from engine.ingest.snmp.spool import TrapSpool
from engine.ingest.snmp.udp_stats import read_rcvbuf_errors, read_socket_drops
from engine.ingest.snmp.users import load_users
from engine.kafka.publisher import KafkaPublisher
from engine.process import configure_logging, run_until_signalled
from engine.settings import Settings

COUNTERS_EVERY_SECONDS = 1.0


def receiver_for(
    settings: Settings, publisher: BatchPublisher, backlog: TrapBacklog | None = None
) -> SnmpReceiver:
    """Everything the receiver needs from settings and files, validated before it listens."""
    policy = ReceiverPolicy(
        communities=tuple(settings.snmp_communities),
        users=load_users(settings.snmp_users_file),
        auth_priv_only=settings.snmp_auth_priv_only,
    )
    return SnmpReceiver(
        publisher,
        policy,
        MibResolver(settings.snmp_mib_dirs),
        load_devices(settings.snmp_devices_file),
        SystemClock(),
        max_in_flight=settings.snmp_max_in_flight,
        engine_id=engine_id_option(settings.snmp_engine_id),
        backlog=backlog,
        fold_seconds=settings.snmp_fold_seconds,
    )


async def _watch_counters(receiver: SnmpReceiver, port: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        receiver.count_engine_rejections()
        errors = read_rcvbuf_errors()
        if errors is not None:
            metrics.UDP_RCVBUF_ERRORS.set(errors)
        drops = read_socket_drops(port)
        if drops is not None:
            metrics.SNMP_SOCKET_DROPS.set(drops)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), COUNTERS_EVERY_SECONDS)


async def snmp_receiver(settings: Settings, stop: asyncio.Event) -> None:
    publisher = KafkaPublisher(
        settings.kafka_bootstrap, settings.kafka_ack_timeout_seconds, "ticketing-snmp"
    )
    spool = TrapSpool(settings.snmp_spool_path, settings.snmp_spool_max_bytes)
    spool.open()
    backlog = TrapBacklog(spool, publisher)
    receiver = receiver_for(settings, publisher, backlog)
    await publisher.start()
    await receiver.start(settings.snmp_host, settings.snmp_port, settings.snmp_receive_buffer_bytes)
    host, port = receiver.address
    metrics.SNMP_RECEIVE_BUFFER_BYTES.set(receiver.receive_buffer_bytes)
    metrics_port = metrics.serve_metrics(settings.snmp_metrics_port, settings.metrics_host)
    if settings.snmp_auth_priv_only:
        accepts = "v3 authPriv only"
    else:
        accepts = "v1, v2c and v3" if settings.snmp_communities else "v3"
    print(
        f"snmp: listening on udp {host}:{port} ({accepts}; "
        f"engine id {receiver.snmp_engine_id.hex()}; "
        f"receive buffer {receiver.receive_buffer_bytes} bytes); "
        f"metrics on http://{settings.metrics_host}:{metrics_port}/metrics",
        flush=True,
    )
    if not spool.empty:
        print(f"snmp: {spool.records} spooled records to replay (ticket events and their "
              f"{SNMP_TRAPS} records) from {spool.directory}", flush=True)  # fmt: skip
    watcher = asyncio.ensure_future(_watch_counters(receiver, port, stop))
    replayer = asyncio.ensure_future(backlog.replay(stop))
    try:
        await stop.wait()
    finally:
        receiver.stop()
        await receiver.drain()
        await replayer
        await watcher
        await publisher.stop()
        spool.close()


def run_snmp_receiver(settings: Settings) -> None:
    configure_logging(settings)
    run_until_signalled(lambda stop: snmp_receiver(settings, stop))
