"""The Kafka security settings are checked as a whole at load, errors naming the setting;
the local broker's listener follows them; a broker's refusal of the credentials is an
error naming its reason, not a client retrying for ever."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.errors import BrokerError
from engine.kafka import broker
from engine.kafka import security as kafka_security
from engine.kafka.security import (
    KafkaAuthenticationError,
    KafkaSecurity,
    SaslMechanism,
    SecurityProtocol,
    security_for,
)
from engine.settings import Settings

SASL: dict[str, Any] = {
    "kafka_security_protocol": "SASL_PLAINTEXT",
    "kafka_sasl_username": "engine",
    "kafka_sasl_password": "s3cret",
}


@pytest.fixture(autouse=True)
def no_engine_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("ENGINE_")]:
        monkeypatch.delenv(name)


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as error:
        Settings(**values)
    return str(error.value)


def test_sasl_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ENGINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ENGINE_KAFKA_SASL_USERNAME", "engine")
    monkeypatch.setenv("ENGINE_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("ENGINE_KAFKA_SSL_CHECK_HOSTNAME", "false")

    assert Settings().kafka_security == KafkaSecurity(
        protocol=SecurityProtocol.SASL_SSL,
        mechanism=SaslMechanism.SCRAM_SHA_256,
        username="engine",
        password="s3cret",
        check_hostname=False,
    )
    assert "s3cret" not in repr(Settings())


def test_the_password_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text("from-a-file\n", encoding="utf-8")
    values = {**SASL, "kafka_sasl_password": "", "kafka_sasl_password_file": secret}

    assert Settings(**values).kafka_security.password == "from-a-file"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_security_protocol": "SASL"}, "kafka_security_protocol"),
        ({**SASL, "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({**SASL, "kafka_sasl_username": ""}, "kafka_sasl_username is needed"),
        ({**SASL, "kafka_sasl_password": ""}, "exactly one of kafka_sasl_password"),
        ({**SASL, "kafka_sasl_password_file": "/nonexistent"}, "kafka_sasl_password_file"),
        ({"kafka_sasl_username": "engine"}, "kafka_security_protocol is PLAINTEXT"),
        ({"kafka_sasl_password": "s3cret"}, "kafka_security_protocol is PLAINTEXT"),
        ({"kafka_ssl_cafile": "/nonexistent"}, "kafka_ssl_cafile"),
        ({**SASL, "kafka_ssl_cafile": __file__}, "kafka_ssl_cafile set but"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": __file__},
            "kafka_ssl_certfile and kafka_ssl_keyfile go together",
        ),
    ],
)
def test_settings_that_disagree_are_refused_naming_the_setting(
    values: dict[str, Any], named: str
) -> None:
    assert named in refusal(**values)


def test_a_tls_file_that_is_no_certificate_is_refused_at_load() -> None:
    message = refusal(kafka_security_protocol="SSL", kafka_ssl_cafile=__file__)

    assert "kafka_ssl_cafile cannot be used" in message


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")

    message = refusal(**{**SASL, "kafka_sasl_password": "", "kafka_sasl_password_file": empty})

    assert "has no password on its first line" in message


def local_broker(tmp_path: Path, **values: Any) -> str:
    settings = Settings(state_dir=tmp_path, **values)
    [node] = broker.cluster_nodes(settings)
    return broker.server_properties(settings, node, (node,))


def test_the_local_broker_asks_for_the_engines_own_sasl_credentials(tmp_path: Path) -> None:
    properties = dict(
        line.split("=", 1)
        for line in local_broker(tmp_path, broker_port=9192, **SASL).split("\n")
        if line
    )

    assert properties["listeners"].startswith("SASL_PLAINTEXT://127.0.0.1:9192,CONTROLLER://")
    assert properties["listener.security.protocol.map"] == (
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"
    )
    assert properties["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert properties["sasl.enabled.mechanisms"] == "PLAIN"
    assert properties["listener.name.sasl_plaintext.plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="engine" password="s3cret" user_engine="s3cret";'
    )


def test_the_local_broker_stays_plaintext_by_default(tmp_path: Path) -> None:
    properties = local_broker(tmp_path)

    assert "listeners=PLAINTEXT://127.0.0.1:9092," in properties
    assert "sasl" not in properties


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({**SASL, "kafka_sasl_mechanism": "SCRAM-SHA-512"}, "SASL_PLAINTEXT with PLAIN"),
        ({**SASL, "kafka_sasl_username": 'en"gine'}, "ENGINE_KAFKA_SASL_USERNAME"),
        ({**SASL, "kafka_sasl_password": 'a"b'}, "ENGINE_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SSL"}, "ENGINE_BOOTSTRAP_SERVERS"),
    ],
)
def test_the_local_broker_refuses_what_it_cannot_serve(
    tmp_path: Path, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(BrokerError, match=named):
        local_broker(tmp_path, **values)


def test_a_refusal_of_the_credentials_is_an_error_naming_the_brokers_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sasl = Settings(**SASL).kafka_security
    monkeypatch.setattr(kafka_security, "_process", sasl)
    monkeypatch.setattr(kafka_security, "_accepted", set())
    answers = iter([None, "Authentication failed: Invalid username or password"])
    monkeypatch.setattr(kafka_security, "broker_answer", lambda bootstrap, security: next(answers))

    assert security_for("127.0.0.1:9092") is sasl  # no broker answered: the clients will say
    with pytest.raises(KafkaAuthenticationError) as refused:
        security_for("127.0.0.1:9092")

    assert "Invalid username or password" in str(refused.value)
    assert "ENGINE_KAFKA_SASL_PASSWORD" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_accepted_credentials_are_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_security, "_process", Settings(**SASL).kafka_security)
    monkeypatch.setattr(kafka_security, "_accepted", set())
    asked: list[str] = []

    def accepting(bootstrap: str, security: KafkaSecurity) -> str:
        asked.append(bootstrap)
        return kafka_security.ACCEPTED

    monkeypatch.setattr(kafka_security, "broker_answer", accepting)
    security_for("127.0.0.1:9092")
    security_for("127.0.0.1:9092")

    assert asked == ["127.0.0.1:9092"]


def test_plaintext_asks_no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_security, "_process", KafkaSecurity())
    monkeypatch.setattr(kafka_security, "broker_answer", pytest.fail)

    assert security_for("127.0.0.1:9092") == KafkaSecurity()
