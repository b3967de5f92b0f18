"""The engine on a broker that asks for SASL credentials (SASL_PLAINTEXT, PLAIN): the local
broker started with the engine's own user, ``engine up`` routing a mail through it, and a
wrong password refused at once, naming the authentication failure."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.contract import Tier
from engine.contract.topics import TIER_TOPICS
from engine.kafka import broker
from engine.kafka.admin import cluster_answers
from engine.kafka.security import KafkaSecurity
from engine.settings import Settings
from tests.integration.harness import (
    ComponentProcess,
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    outage_mail_routed,
    port_open,
    send_mail,
    support_mail,
    wait_until,
)

USER = "engine"
PASSWORD = "sasl-test-secret"
# How long a refused process may take to give up: far more than it needs (it asks the
# broker once before its first client), far less than a client's retries for ever.
REFUSAL_TIMEOUT_SECONDS = 120


def sasl_env(password: str = PASSWORD) -> dict[str, str]:
    return {
        "ENGINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ENGINE_KAFKA_SASL_MECHANISM": "PLAIN",
        "ENGINE_KAFKA_SASL_USERNAME": USER,
        "ENGINE_KAFKA_SASL_PASSWORD": password,
    }


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The engine's local broker, started by its own code with the SASL settings."""
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("sasl-broker"),
        broker_port=free_port(),
        controller_port=free_port(),
        broker_heap="512m",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username=USER,
        kafka_sasl_password=PASSWORD,
    )
    broker.start(settings)
    yield settings
    broker.stop(settings)


def test_the_local_broker_answers_only_clients_with_the_engines_credentials(
    sasl_broker: Settings,
) -> None:
    bootstrap = sasl_broker.kafka_bootstrap

    assert cluster_answers(bootstrap, 5.0, security=sasl_broker.kafka_security)
    assert not cluster_answers(bootstrap, 5.0, security=KafkaSecurity())


def test_engine_up_routes_a_mail_through_a_sasl_listener(
    sasl_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = sasl_broker.kafka_bootstrap
    engine = EngineProcess(
        engine_env(tmp_path / "engine", bootstrap, **sasl_env()), tmp_path / "up.log"
    )
    reader = TopicReader(bootstrap, TIER_TOPICS[Tier.L3], security=sasl_broker.kafka_security)
    try:
        engine.start("--bootstrap-servers", bootstrap)
        assert outage_mail_routed(engine, reader)["kind"] == "ticket.routed"
    finally:
        reader.close()
        assert engine.stop() == 0


@pytest.mark.parametrize("command", [["up"], ["processor"], ["mail-parser"]])
def test_a_wrong_password_stops_the_engine_naming_the_authentication_failure(
    sasl_broker: Settings, tmp_path: Path, command: list[str]
) -> None:
    bootstrap = sasl_broker.kafka_bootstrap
    env = engine_env(tmp_path / "engine", bootstrap, **sasl_env("not-the-password"))

    result = subprocess.run(
        [sys.executable, "-m", "engine", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT_SECONDS,
        check=False,
    )

    assert result.returncode != 0, result.stdout + result.stderr
    assert f"Kafka at {bootstrap} refused the engine's SASL_PLAINTEXT as 'engine'" in result.stderr
    assert "Authentication failed: Invalid username or password" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr


def test_the_smtp_ingestor_with_a_wrong_password_asks_senders_to_retry_and_says_why(
    sasl_broker: Settings, tmp_path: Path
) -> None:
    env = engine_env(tmp_path / "smtp", sasl_broker.kafka_bootstrap, **sasl_env("not-it"))
    smtp = ComponentProcess("smtp", env, tmp_path / "smtp.log")
    port = int(env["ENGINE_SMTP_PORT"])
    try:
        wait_until(lambda: port_open(port), 60, "the SMTP ingestor to listen", on_timeout=smtp.log)
        message = support_mail("Caída", "No hay tono", f"<{uuid.uuid4()}@x.example>")

        code, reply = send_mail(port, message)

        assert code == 451, reply
        assert "SaslAuthenticationFailed: Authentication failed: Invalid username" in smtp.log()
        assert "not-it" not in smtp.log()
    finally:
        smtp.stop()
