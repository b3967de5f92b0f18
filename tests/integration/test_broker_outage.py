"""Nothing acknowledged is lost: with the broker away the sender hears 451, and the mail it
retries after the broker is back is routed; and a minute without Kafka fills the log with a
few dozen lines, not thousands. A broker of its own, so others are not stopped."""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from pathlib import Path

from engine.contract import Tier
from engine.contract.topics import TIER_TOPICS
from engine.kafka import broker
from engine.settings import Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    send_mail,
    support_mail,
    wait_until,
)

OUTAGE_SECONDS = 60
# engine up's seven components each say once that Kafka is gone and once a minute that it
# still is; the clients' own complaints before the first check (a second or two) pass.
MOST_LINES_IN_AN_OUTAGE = 60
LEADING = "ticketing_entitlements_leading"


def killed(settings: Settings) -> None:
    for node in broker.cluster_nodes(settings):
        pid = broker.running_pid(node.paths)
        assert pid is not None, f"broker node {node.node_id} is not running"
        os.kill(pid, signal.SIGKILL)


def components_saying(lines: list[str], words: str) -> list[str]:
    """The log lines (without their time stamp) that say ``words``."""
    return [re.sub(r"^\S+ \S+ ", "", line) for line in lines if words in line]


def test_broker_killed_gives_451_a_quiet_log_and_the_retried_mail_is_routed(
    own_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    engine = EngineProcess(engine_env(tmp_path / "engine", bootstrap), tmp_path / "engine.log")
    engine.start("--bootstrap-servers", bootstrap)
    reader = TopicReader(bootstrap, TIER_TOPICS[Tier.L3])
    try:
        before = support_mail("Caída", "la central está caída", f"<{uuid.uuid4()}@acme.example>")
        code, reply = send_mail(engine.smtp_port, before)
        assert code == 250, reply
        reader.wait_for(lambda key, value: key == reply.decode().rsplit(" ", 1)[-1])
        reader.close()

        lines_before = len(engine.log_path.read_text(errors="replace").splitlines())
        killed(own_broker)
        during = support_mail(
            "Otra caída", "no entran ni salen llamadas", f"<{uuid.uuid4()}@acme.example>"
        )
        code, reply = send_mail(engine.smtp_port, during)
        assert code == 451, reply
        assert reply.startswith(b"4.3.0")

        time.sleep(OUTAGE_SECONDS)
        outage = engine.log_path.read_text(errors="replace").splitlines()[lines_before:]
        print(f"{len(outage)} log lines in {OUTAGE_SECONDS} s without Kafka:", *outage, sep="\n")
        assert len(outage) <= MOST_LINES_IN_AN_OUTAGE
        assert components_saying(outage, "Kafka unreachable")
        assert not components_saying(outage, "Kafka reachable again")

        broker.start(own_broker)

        def retried_by_sender() -> bytes | None:
            code, reply = send_mail(engine.smtp_port, during)
            if code == 250:
                return reply
            assert code == 451, reply  # still reconnecting: a real MTA retries too
            time.sleep(1)
            return None

        accepted = wait_until(retried_by_sender, 90, "the SMTP ingestor to accept again")
        ticket = accepted.decode().rsplit(" ", 1)[-1]
        reader = TopicReader(bootstrap, TIER_TOPICS[Tier.L3])
        routed = reader.wait_for(lambda key, value: key == ticket, timeout=120)
        assert routed["data"]["ticket"]["priority"] == "P1"

        def every_loss_ended() -> bool:
            """Each component that said Kafka was gone says it is back, unless it exited
            meanwhile (an SLA tick Kafka did not take exits 75); its successor, started
            while Kafka was away, said it waited."""
            lines = engine.log_path.read_text(errors="replace").splitlines()
            lost = len(components_saying(lines, "Kafka unreachable"))
            exited = len(components_saying(lines, " exited with "))
            back = len(components_saying(lines, "Kafka reachable again"))
            return back >= 1 and back >= lost - exited

        wait_until(
            every_loss_ended,
            60,
            "every component that lost Kafka and still runs to say it is back",
            on_timeout=engine.log,
        )
        # The ledger's lease member fails with the broker; it joins again once it is back.
        entitlements_metrics = int(engine.env["ENGINE_ENTITLEMENTS_METRICS_PORT"])
        wait_until(
            lambda: engine.metric(LEADING, port=entitlements_metrics) == 1, 90,
            "the entitlements ledger to lead again", on_timeout=engine.log,
        )  # fmt: skip
    finally:
        reader.close()
        engine.stop()
