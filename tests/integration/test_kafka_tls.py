"""The engine on a TLS listener: a broker whose certificate a CA of the test's own signed,
and ``engine up`` given that CA (``ENGINE_KAFKA_SSL_CAFILE``), host names checked, routing a
mail: kafka-python (provisioning, the mail parser), aiokafka (the SMTP ingestor) and faust
(the processor) all through TLS."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.contract import Tier
from engine.contract.topics import TIER_TOPICS
from engine.kafka import broker
from engine.settings import Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    free_port,
    local_broker_settings,
    outage_mail_routed,
)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    broker_pem: Path  # the broker's unencrypted PKCS#8 key, then its certificate


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(folder: Path) -> Certificates:
    """A CA, and a certificate it signs for the broker at 127.0.0.1 (by IP address)."""
    ca_key, ca = folder / "ca.key", folder / "ca.crt"
    key, request, cert = folder / "broker.key", folder / "broker.csr", folder / "broker.crt"
    san = folder / "san.ext"
    san.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=engine-test-ca", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(request))  # fmt: skip
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(san), "-out", str(cert))  # fmt: skip
    pem = folder / "broker.pem"
    pem.write_text(key.read_text() + cert.read_text(), encoding="utf-8")
    return Certificates(ca=ca, broker_pem=pem)


def with_tls_listener(properties: str, port: int, pem: Path) -> str:
    """The local broker's properties plus an SSL listener on ``port`` (PEM keystore)."""

    def extended(key: str, extra: str) -> str:
        pattern = re.compile(rf"^{re.escape(key)}=(.*)$", re.MULTILINE)
        assert pattern.search(properties), key
        return pattern.sub(lambda found: f"{key}={found.group(1)},{extra}", properties)

    properties = extended("listeners", f"SSL://127.0.0.1:{port}")
    properties = extended("advertised.listeners", f"SSL://127.0.0.1:{port}")
    properties = extended("listener.security.protocol.map", "SSL:SSL")
    return properties + (
        f"listener.name.ssl.ssl.keystore.type=PEM\nlistener.name.ssl.ssl.keystore.location={pem}\n"
    )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Certificates]]:
    """The local broker with an SSL listener beside its PLAINTEXT one; its TLS bootstrap."""
    folder = tmp_path_factory.mktemp("tls")
    certificates = make_certificates(folder)
    settings = local_broker_settings(folder / "broker")
    tls_port = free_port()
    plain = broker.server_properties

    def tls_properties(*args: object) -> str:
        return with_tls_listener(plain(*args), tls_port, certificates.broker_pem)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(broker, "server_properties", tls_properties)
        broker.start(settings)
    yield f"127.0.0.1:{tls_port}", certificates
    broker.stop(settings)


def test_engine_up_routes_a_mail_through_a_tls_listener(
    tls_broker: tuple[str, Certificates], tmp_path: Path
) -> None:
    bootstrap, certificates = tls_broker
    tls = {"ENGINE_KAFKA_SECURITY_PROTOCOL": "SSL", "ENGINE_KAFKA_SSL_CAFILE": str(certificates.ca)}
    engine = EngineProcess(engine_env(tmp_path / "engine", bootstrap, **tls), tmp_path / "up.log")
    security = Settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=certificates.ca
    ).kafka_security
    reader = TopicReader(bootstrap, TIER_TOPICS[Tier.L3], security=security)
    try:
        engine.start("--bootstrap-servers", bootstrap)
        assert outage_mail_routed(engine, reader)["kind"] == "ticket.routed"
    finally:
        reader.close()
        assert engine.stop() == 0
