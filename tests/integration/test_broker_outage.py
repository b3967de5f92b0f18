"""Nothing acknowledged is lost: with the broker away the sender hears 451, and the mail it
retries after the broker is back is routed. A broker of its own, so others are not stopped."""

from __future__ import annotations

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


def test_broker_down_gives_451_and_the_retried_mail_is_routed(
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

        broker.stop(own_broker)
        during = support_mail(
            "Otra caída", "no entran ni salen llamadas", f"<{uuid.uuid4()}@acme.example>"
        )
        code, reply = send_mail(engine.smtp_port, during)
        assert code == 451, reply
        assert reply.startswith(b"4.3.0")

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
    finally:
        reader.close()
        engine.stop()
