"""A real Prometheus in the loop: ``engine up --monitoring`` runs one with the shipped
configuration; after outage mails, a trap and a record the processor cannot read, its HTTP
API answers what happened, every rule it loaded is healthy, and every query of every
dashboard panel evaluates without error."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from kafka import KafkaProducer

from engine.contract.topics import TICKET_EVENTS, named
from tests.integration.harness import (
    PROJECT_ROOT,
    SPANISH_OUTAGE,
    EngineProcess,
    engine_env,
    free_port,
    port_open,
    send_mail,
    support_mail,
    wait_until,
)
from tests.integration.snmp_peers import LINK_DOWN, NetSnmp, link_varbinds

OUTAGE = SPANISH_OUTAGE
COMMUNITY = "monitoring-community"


def dashboards() -> ModuleType:
    path = PROJECT_ROOT / "deploy" / "monitoring" / "grafana" / "generate.py"
    spec = importlib.util.spec_from_file_location("dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def ask(port: int, path: str, **query: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        body: dict[str, Any] = json.loads(answer.read())
    return body


def value(port: int, expr: str) -> float | None:
    result = ask(port, "query", query=expr)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_sees_what_happened_and_every_dashboard_query_evaluates(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    assert shutil.which("prometheus"), "prometheus is missing: run make bootstrap"
    prometheus = free_port()
    env = engine_env(
        tmp_path / "state", topics, topic_prefix,
        ENGINE_PROMETHEUS_PORT=str(prometheus),
        ENGINE_PROMETHEUS_SCRAPE_SECONDS="1",
        ENGINE_SNMP_COMMUNITIES=COMMUNITY,
    )  # fmt: skip
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics, "--monitoring")
    try:
        wait_until(lambda: port_open(prometheus), 60, "Prometheus", on_timeout=engine.log)
        for _ in range(3):
            mail = support_mail("Urgente: central caída", OUTAGE, f"<{uuid.uuid4()}@acme.example>")
            code, reply = send_mail(engine.smtp_port, mail)
            assert code == 250, reply
        snmp_metrics = int(env["ENGINE_SNMP_METRICS_PORT"])
        wait_until(lambda: port_open(snmp_metrics), 60, "the SNMP receiver", on_timeout=engine.log)
        NetSnmp(int(env["ENGINE_SNMP_PORT"]), tmp_path / "net-snmp").trap_v2c(
            COMMUNITY, LINK_DOWN, *link_varbinds(3, up=False)
        )
        producer = KafkaProducer(bootstrap_servers=topics)
        producer.send(named(TICKET_EVENTS, topic_prefix), key=b"T-X", value=b"not json")
        producer.flush(30)
        producer.close()

        open_p1 = (
            "sum(max without (instance, job, component) "
            '(ticketing_open_tickets{priority="P1", tier="L3", status="open"}))'
        )
        wait_until(lambda: value(prometheus, open_p1) == 3, 90, "three P1 open on L3",
                   on_timeout=engine.log)  # fmt: skip
        wait_until(
            lambda: (value(prometheus, 'sum(ticketing_dead_letters_total{origin="processor"})')
                     or 0) >= 1,
            60, "the dead letter counted",
        )  # fmt: skip
        wait_until(
            lambda: (value(prometheus, 'sum(ticketing_events_ingested_total{source="snmp"})')
                     or 0) >= 1,
            60, "the trap counted",
        )  # fmt: skip

        def scraped() -> set[str]:
            up = ask(prometheus, "query", query="up == 1")["data"]["result"]
            return {sample["metric"]["component"] for sample in up}

        running = {"smtp", "mail-parser", "api", "processor", "sla", "entitlements", "snmp"}
        wait_until(lambda: scraped() >= running, 60, "every component scraped",
                   on_timeout=lambda: f"scraped: {sorted(scraped())}\n{engine.log()}")  # fmt: skip

        groups = ask(prometheus, "rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert rules, "the shipped rules were not loaded"
        unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
        assert unhealthy == []

        for query in dashboards().every_query():
            expr = query.expr.replace("$__rate_interval", "1m")
            answer = ask(prometheus, "query", query=expr)
            assert answer["status"] == "success", (query.title, answer)
    finally:
        engine.stop()
