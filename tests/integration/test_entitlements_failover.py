"""Two entitlements ledgers: one keeps the ledger, the other stands by; when the writer is
killed, the other takes the lease, and when it comes back one of the two leads again; every
hour spent is counted exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from engine.contract import ActivityType, TicketActivity, TicketActivityData, to_json
from engine.contract.topics import ENTITLEMENT_BALANCES, TICKET_ACTIVITY, named
from tests.integration.harness import (
    ComponentProcess,
    TopicReader,
    engine_env,
    free_port,
    wait_until,
)

LEADING = "ticketing_entitlements_leading"


def test_the_standby_ledger_takes_over_and_counts_each_hour_once(
    topics: str, topic_prefix: str, tmp_path: Path
) -> None:
    customer = f"acme-{uuid.uuid4().hex[:6]}"
    customers = tmp_path / "customers.yaml"
    customers.write_text(
        f"customers:\n  - {{id: {customer}, domains: [{customer}.example], support_hours: 10}}\n"
    )
    base = engine_env(
        tmp_path / "state", topics, topic_prefix, ENGINE_CUSTOMERS_FILE=str(customers)
    )
    ledgers = [
        ComponentProcess(
            "entitlements",
            {**base, "ENGINE_ENTITLEMENTS_METRICS_PORT": str(port)},
            tmp_path / f"ledger-{number}.log",
        )
        for number, port in enumerate((free_port(), free_port()))
    ]
    ports = {
        id(ledger): int(ledger.metrics.env["ENGINE_ENTITLEMENTS_METRICS_PORT"])
        for ledger in ledgers
    }
    balances = TopicReader(topics, named(ENTITLEMENT_BALANCES, topic_prefix))
    producer = KafkaProducer(bootstrap_servers=topics, acks="all")

    def leading() -> list[float]:
        return [ledger.metrics.metric(LEADING, port=ports[id(ledger)]) for ledger in ledgers]

    def logs() -> str:
        return "\n".join(ledger.log()[-3000:] for ledger in ledgers)

    def spend(minutes: int) -> None:
        ticket = f"T-{uuid.uuid4().hex[:10].upper()}"
        worked = TicketActivity(
            event_id=f"activity:{uuid.uuid4()}", occurred_at=datetime.now(UTC), source="test",
            data=TicketActivityData(ticket_id=ticket, activity=ActivityType.TIME_SPENT,
                                    actor="ana", minutes=minutes, customer_id=customer),
        )  # fmt: skip
        producer.send(
            named(TICKET_ACTIVITY, topic_prefix), key=ticket.encode(), value=to_json(worked)
        ).get(30)

    def balance(hours_left: float) -> dict[str, Any]:
        return balances.wait_for(
            lambda key, value: key == customer and value["data"]["hours_left"] == hours_left,
            timeout=90,
        )

    try:
        wait_until(lambda: sorted(leading()) == [0.0, 1.0], 90, "one ledger to lead", logs)
        writer = ledgers[leading().index(1.0)]
        standby = next(ledger for ledger in ledgers if ledger is not writer)
        balance(10.0)
        spend(60)
        balance(9.0)

        writer.kill()
        wait_until(
            lambda: standby.metrics.metric(LEADING, port=ports[id(standby)]) == 1.0,
            60,
            "the standby ledger to take the lease",
            logs,
        )
        spend(120)
        balance(7.0)

        # The killed one comes back: it joins the group (a rebalance), one of the two leads,
        # and the ledger goes on counting once, without processes coming and going.
        returned = ComponentProcess(
            "entitlements", writer.metrics.env, tmp_path / "ledger-returned.log"
        )
        ports[id(returned)] = ports[id(writer)]
        ledgers[ledgers.index(writer)] = returned
        wait_until(
            lambda: (
                returned.metrics.metric(LEADING, port=ports[id(returned)]) in (0.0, 1.0)
                and "waiting for the ledger's lease" in returned.log()
            ),
            60,
            "the returned ledger to join",
            logs,
        )
        wait_until(lambda: sorted(leading()) == [0.0, 1.0], 60, "one leader of two", logs)
        spend(60)
        balance(6.0)
        assert sorted(leading()) == [0.0, 1.0]
        assert all(ledger.process.poll() is None for ledger in ledgers), logs()
        spent = balances.matching(
            lambda key, value: key == customer and value["data"]["spent_minutes"] > 240
        )
        assert spent == [], spent
    finally:
        producer.close()
        balances.close()
        for ledger in ledgers:
            ledger.stop()
