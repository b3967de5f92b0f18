"""Support hours through the running engine: the directory's hours, time spent deducted,
a customer without hours routed to entitlement_needed and told, a top-up restoring
service; the balance queried with ``engine entitlements show``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.contract import (
    ActivityType,
    SpecialRoute,
    TicketActivity,
    TicketActivityData,
    Tier,
    to_json,
)
from engine.contract.topics import (
    ENTITLEMENT_BALANCES,
    SPECIAL_ROUTE_TOPICS,
    TICKET_ACTIVITY,
    TICKET_EVENTS,
    TIER_TOPICS,
    named,
)
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    send_mail,
    support_mail,
    wait_until,
)


def new_ticket(engine: EngineProcess, sender: str) -> str:
    mail = support_mail("Consulta", "How do I add an extension?", f"<{uuid.uuid4()}@x>", sender)
    code, reply = send_mail(engine.smtp_port, mail)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def engine_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args], env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_hours_are_counted_and_a_customer_without_hours_is_routed_and_told(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    customer = f"acme-{uuid.uuid4().hex[:6]}"
    domain = f"{customer}.example"
    customers = tmp_path / "customers.yaml"
    customers.write_text(
        "customers:\n"
        f"  - {{id: {customer}, domains: [{domain}], support_hours: 1, language: en,\n"
        "     version: '4.2', modules: [callcenter]}\n"
    )
    env = engine_env(tmp_path / "state", topics, topic_prefix, ENGINE_CUSTOMERS_FILE=str(customers))
    balances = TopicReader(topics, named(ENTITLEMENT_BALANCES, topic_prefix))
    activity = TopicReader(topics, named(TICKET_ACTIVITY, topic_prefix))
    exhausted = TopicReader(
        topics, named(SPECIAL_ROUTE_TOPICS[SpecialRoute.ENTITLEMENT_NEEDED], topic_prefix)
    )
    tier = TopicReader(topics, named(TIER_TOPICS[Tier.L1], topic_prefix))
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")
    engine = EngineProcess(env, tmp_path / "engine.log")
    engine.start("--bootstrap-servers", topics)

    def balance(hours_left: float) -> dict[str, Any]:
        return balances.wait_for(
            lambda key, value: key == customer and value["data"]["hours_left"] == hours_left,
            timeout=90,
        )

    try:
        balance(1.0)  # opened from the directory
        first = new_ticket(engine, f"ana@{domain}")
        routed = tier.wait_for(lambda key, value: key == first)
        assert {"version-limited", "eol-callcenter"} <= set(routed["data"]["ticket"]["tags"])
        assert "entitlement_needed" not in routed["data"]["route"]["special_routes"]

        worked = TicketActivity(
            event_id=f"activity:{uuid.uuid4()}", occurred_at=datetime.now(UTC), source="test",
            data=TicketActivityData(ticket_id=first, activity=ActivityType.TIME_SPENT,
                                    actor="ana", minutes=60),
        )  # fmt: skip
        producer.send(
            named(TICKET_EVENTS, topic_prefix), key=first.encode(), value=to_json(worked)
        ).get(30)
        assert balance(0.0)["data"]["last_ticket_id"] == first
        shown = engine_command(env, "entitlements", "show", customer)
        assert shown.returncode == 0, shown.stderr
        assert "0 h left" in shown.stdout and "NO HOURS LEFT" in shown.stdout

        wait_until(lambda: engine.metric("ticketing_customers_without_hours") >= 1, 60,
                   "the processor to know the balance")  # fmt: skip
        second = new_ticket(engine, f"bea@{domain}")
        held = exhausted.wait_for(lambda key, value: key == second)
        assert any("0 support hours left" in note
                   for note in held["data"]["classification"]["explanation"])  # fmt: skip
        tier.wait_for(lambda key, value: key == second)  # never dropped: queued too
        told = activity.wait_for(
            lambda key, value: key == second and value["data"]["activity"] == "customer_informed"
        )
        assert "support hours are used up" in told["data"]["message"]

        topped = engine_command(
            env, "entitlements", "topup", customer, "--hours", "5", "--reference", "INV-7"
        )
        assert topped.returncode == 0, topped.stderr
        balance(5.0)
        for hours, reference in (("5", "INV-7"), ("1", "INV-8")):  # INV-7 a second time
            added = engine_command(
                env, "entitlements", "topup", customer, "--hours", hours, "--reference", reference
            )
            assert added.returncode == 0, added.stderr
        balances.wait_for(
            lambda key, value: key == customer and value["data"]["topped_up_hours"] == 6.0
        )
        assert (
            balances.matching(
                lambda key, value: key == customer and value["data"]["topped_up_hours"] > 6.0
            )
            == []
        )
        shown = engine_command(env, "entitlements", "show", customer)
        assert "6 h left" in shown.stdout and "(ok)" in shown.stdout
    finally:
        producer.close()
        for reader in (balances, activity, exhausted, tier):
            reader.close()
        assert engine.stop() == 0, engine.log()
