"""What the API process exports for the dashboards, on a timer: the open tickets and SLA
counts of its ticket view, and the consumer lag of every engine consumer group."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from engine import metrics
from engine.api.view import TicketView
from engine.kafka.lag import Lag, read_lag
from engine.settings import Settings

log = logging.getLogger(__name__)
GAUGES_EVERY_SECONDS = 2.0
LAG_EVERY_SECONDS = 15.0


def export_lag(lag: Lag, app_id: str) -> None:
    """Set ``ticketing_consumer_lag`` from one reading; groups and topics the engine does
    not name are left out (labels stay bounded)."""
    metrics.CONSUMER_LAG.clear()
    for (group, topic), records in lag.items():
        component = group_component(group, app_id)
        name = topic_name(topic)
        if component is not None and name is not None:
            metrics.CONSUMER_LAG.labels(component, name).set(records)


def group_component(group: str, app_id: str) -> metrics.Component | None:
    """``<app id>`` is the processor's group (faust's), ``<app id>-sla`` the SLA worker's..."""
    if group == app_id:
        return metrics.Component.PROCESSOR
    suffix = group.removeprefix(f"{app_id}-")
    if suffix == group:
        return None
    try:
        return metrics.Component(suffix.replace("-", "_"))
    except ValueError:
        return None


def topic_name(topic: str) -> metrics.TopicName | None:
    for name in metrics.TopicName:
        if topic.endswith(name.value):
            return name
    return None


async def export_forever(view: TicketView, settings: Settings) -> None:
    """Until cancelled: the view's gauges every 2 s, the lag every 15 s."""
    loop = asyncio.get_running_loop()
    next_lag = 0.0
    while True:
        view.export_gauges()
        view.export_waiting(datetime.now(UTC))
        if loop.time() >= next_lag:
            next_lag = loop.time() + LAG_EVERY_SECONDS
            try:
                lag = await asyncio.to_thread(read_lag, settings.kafka_bootstrap, settings.app_id)
            except Exception as error:  # Kafka away: the last reading stays, said once a round
                log.warning("consumer lag not read: %r", error)
            else:
                export_lag(lag, settings.app_id)
        await asyncio.sleep(GAUGES_EVERY_SECONDS)
