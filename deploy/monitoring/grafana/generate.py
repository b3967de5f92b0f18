"""The engine's Grafana dashboards, as code: the desk (queues, SLA, response times) and the
pipeline (ingest, latency, lag, spools, storms). ``python deploy/monitoring/grafana/generate.py``
writes ``desk.json`` and ``pipeline.json`` beside this file; a test fails when the committed
JSON drifts from this code, and every query is evaluated against a real Prometheus.

Each query takes, per series, the highest value any process reports (``max without
(instance, job, component)``): the API's ticket view counts the same tickets in every API
process, so a sum would count them as often as there are API processes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery as PrometheusQuery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Query:
    title: str
    expr: str
    legend: str = ""
    unit: str = "short"
    stat: bool = False  # a single figure, not a graph


def _one(expr: str) -> str:
    return f"max without (instance, job, component) ({expr})"


def _quantile(q: float, histogram: str, by: str) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket[$__rate_interval])))"
    )


DESK: dict[str, list[Query]] = {
    "Queues": [
        Query("Open tickets by tier and priority",
              f"sum by (tier, priority) ({_one('ticketing_open_tickets')})",
              "{{tier}} {{priority}}"),
        Query("P1 open", "sum(" + _one('ticketing_open_tickets{priority="P1"}') + ")", stat=True),
        Query("Waiting for someone, by tier and priority",
              f"sum by (tier, priority) ({_one('ticketing_waiting_tickets')})",
              "{{tier}} {{priority}}"),
        Query("Oldest ticket nobody has, by tier", _one("ticketing_oldest_waiting_seconds"),
              "{{tier}}", "s"),
        Query("Agents by standing", _one("ticketing_agents"), "{{standing}}"),
    ],
    "SLA": [
        Query("Updates due soon, by priority", _one("ticketing_sla_due_soon"), "{{priority}}"),
        Query("Updates overdue now, by priority", _one("ticketing_sla_in_breach"), "{{priority}}"),
        Query("Updates on time (last hour)",
              "sum(increase(ticketing_sla_updates_total{outcome=\"on_time\"}[1h])) / "
              "sum(increase(ticketing_sla_updates_total[1h]))", unit="percentunit", stat=True),
        Query("Breaches and warnings emitted",
              "sum by (kind, obligation) (rate(ticketing_sla_alerts_total[$__rate_interval]))",
              "{{kind}} {{obligation}}", "ops"),
        Query("Escalation steps told",
              "sum by (reason, role) (rate(ticketing_escalations_total[$__rate_interval]))",
              "{{reason}} {{role}}", "ops"),
    ],
    "Response times": [
        Query("Time to first response, p90 by priority",
              _quantile(0.9, "ticketing_time_to_first_response_seconds", "priority"),
              "{{priority}}", "s"),
        Query("Time to resolve, p90 by priority",
              _quantile(0.9, "ticketing_time_to_resolve_seconds", "priority"), "{{priority}}", "s"),
        Query("Time to assign, p90 by priority",
              _quantile(0.9, "ticketing_time_to_assign_seconds", "priority"), "{{priority}}", "s"),
        Query("Time to accept, p90 by priority",
              _quantile(0.9, "ticketing_time_to_accept_seconds", "priority"), "{{priority}}", "s"),
    ],
}  # fmt: skip

PIPELINE: dict[str, list[Query]] = {
    "Ingest": [
        Query("Inputs by channel and outcome",
              "sum by (source, outcome) (rate(ticketing_events_ingested_total[$__rate_interval]))",
              "{{source}} {{outcome}}", "ops"),
        Query("Tickets routed by tier",
              "sum by (tier) (rate(ticketing_tickets_routed_total[$__rate_interval]))",
              "{{tier}}", "ops"),
        Query("Dead letters by component",
              "sum by (origin) (rate(ticketing_dead_letters_total[$__rate_interval]))",
              "{{origin}}", "ops"),
    ],
    "Latency": [
        Query("Ingest to routed, p99",
              "histogram_quantile(0.99, sum by (le) "
              "(rate(ticketing_ingest_to_routed_seconds_bucket[$__rate_interval])))", "p99", "s"),
        Query("Arrival to Kafka's ack, p99 by channel",
              _quantile(0.99, "ticketing_ingest_kafka_ack_seconds", "source"), "{{source}}", "s"),
    ],
    "Lag and spools": [
        Query("Consumer lag by group and topic", _one("ticketing_consumer_lag"),
              "{{group}} {{topic}}"),
        Query("Traps waiting in the SNMP spool", _one("ticketing_snmp_spool_records")),
        Query("Traps lost by the spool",
              "sum by (reason) (rate(ticketing_snmp_spool_dropped_total[$__rate_interval]))",
              "{{reason}}", "ops"),
    ],
    "Storms": [
        Query("Alarms being folded now (a storm)", "sum(ticketing_snmp_folds_open)", stat=True),
        Query("Traps folded into their alarm",
              "sum(rate(ticketing_snmp_traps_folded_total[$__rate_interval]))", unit="ops"),
        Query("Components up", "sum by (component) (up)", "{{component}}"),
    ],
}  # fmt: skip

DASHBOARDS = {
    "desk": ("Ticketing engine: the desk", DESK),
    "pipeline": ("Ticketing engine: the pipeline", PIPELINE),
}


def dashboard(uid: str, title: str, rows: dict[str, list[Query]]) -> Dashboard:
    board = (
        Dashboard(title)
        .uid(f"ticketing-{uid}")
        .tags(["ticketing-engine", "generated"])
        .refresh("30s")
        .time("now-6h", "now")
    )
    for row, queries in rows.items():
        board = board.with_row(Row(row))
        for query in queries:
            target = PrometheusQuery().expr(query.expr).legend_format(query.legend or "__auto")
            panel = (Stat() if query.stat else Timeseries()).title(query.title).unit(query.unit)
            board = board.with_panel(panel.with_target(target))
    return board


def rendered() -> dict[str, str]:
    """Each dashboard's file name and JSON, as committed."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {
        f"{uid}.json": encoder.encode(dashboard(uid, title, rows).build()) + "\n"
        for uid, (title, rows) in DASHBOARDS.items()
    }


def every_query() -> list[Query]:
    return [query for _, rows in DASHBOARDS.values() for qs in rows.values() for query in qs]


def main() -> int:
    for name, text in rendered().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}: {len(json.loads(text)['panels'])} panels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
