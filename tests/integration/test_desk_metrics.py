"""The desk's numbers on the real broker: after an outage mail through SMTP, the API's
endpoint counts it open on L3 as a P1, reads the consumer lag of the engine's groups, and
every process (the entitlements ledger included) announces its build."""

from __future__ import annotations

import urllib.request
import uuid
from functools import partial
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import (
    SPANISH_OUTAGE,
    EngineProcess,
    engine_env,
    send_mail,
    support_mail,
    wait_until,
)

OUTAGE = SPANISH_OUTAGE
PORTS = (
    "ENGINE_SMTP_METRICS_PORT", "ENGINE_MAIL_PARSER_METRICS_PORT",
    "ENGINE_PROCESSOR_METRICS_PORT", "ENGINE_SLA_METRICS_PORT", "ENGINE_API_METRICS_PORT",
    "ENGINE_SNMP_METRICS_PORT", "ENGINE_ENTITLEMENTS_METRICS_PORT",
)  # fmt: skip


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_desk_numbers_are_exported_by_the_processes_that_know_them(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = engine_env(tmp_path / "state", topics, topic_prefix)
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)
    api = int(env["ENGINE_API_METRICS_PORT"])
    try:
        mail = support_mail("Urgente: central caída", OUTAGE, f"<{uuid.uuid4()}@acme.example>")
        code, reply = send_mail(engine.smtp_port, mail)
        assert code == 250, reply
        open_p1 = (
            "ticketing_open_tickets",
            (("priority", "P1"), ("status", "open"), ("tier", "L3")),
        )
        wait_until(lambda: samples(api).get(open_p1) == 1, 60, "the P1 counted open on L3",
                   on_timeout=engine.log)  # fmt: skip
        lag = wait_until(
            lambda: [key for key in samples(api) if key[0] == "ticketing_consumer_lag"],
            60, "the consumer lag to be read", on_timeout=engine.log,
        )  # fmt: skip
        groups = {dict(labels)["group"] for _, labels in lag}
        assert {"processor", "mail_parser"} <= groups, groups  # the groups that read the mail

        def announces_build(port: int) -> bool:
            return any(name == "ticketing_build_info" for name, _ in samples(port))

        for variable in PORTS:
            port = int(env[variable])
            wait_until(partial(announces_build, port), 60, f"build info on {variable}")
    finally:
        engine.stop()
