"""Every Kafka client the engine, its benchmarks and the integration harness build gets the
security settings (``engine.kafka.security``): a client built without them would talk
PLAINTEXT to a cluster that asks for TLS or SASL. And the settings reach each library
in its own terms."""

from __future__ import annotations

import ast
import asyncio
import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from engine.kafka import security as kafka_security
from engine.kafka.security import (
    KafkaSecurity,
    SaslMechanism,
    SecurityProtocol,
    aiokafka_options,
    faust_options,
    kafka_python_options,
    tls_context,
)
from engine.settings import Settings
from tests.unit.kafka.test_clients_only_in_kafka import CLIENTS

ROOT = Path(__file__).resolve().parents[3]
SCANNED = [
    *sorted((ROOT / "engine").rglob("*.py")),
    *sorted((ROOT / "bench").rglob("*.py")),
    *(
        path
        for path in sorted((ROOT / "tests" / "integration").glob("*.py"))
        if not path.name.startswith("test_")
    ),
]
SECURITY_HELPERS = {"kafka_python_options", "aiokafka_options", "faust_options"}
SASL = KafkaSecurity(
    protocol=SecurityProtocol.SASL_PLAINTEXT,
    mechanism=SaslMechanism.SCRAM_SHA_512,
    username="engine",
    password="s3cret",
)


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _is_client(call: ast.Call, aliases: dict[str, str]) -> bool:
    name = _called_name(call)
    if name is None:
        return False
    if aliases.get(name, name) in CLIENTS:
        return True
    func = call.func  # faust.App(...)
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "App"
        and isinstance(func.value, ast.Name)
        and func.value.id == "faust"
    )


def _gets_security(call: ast.Call) -> bool:
    """``**kafka_python_options(...)`` (or the aiokafka or faust helper) among its keywords."""
    return any(
        keyword.arg is None
        and isinstance(keyword.value, ast.Call)
        and _called_name(keyword.value) in SECURITY_HELPERS
        for keyword in call.keywords
    )


def clients_without_security(source: str) -> list[int]:
    """Lines of the Kafka client constructions in ``source`` that do not get the security
    options."""
    tree = ast.parse(source)
    aliases = {
        alias.asname or alias.name: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in CLIENTS
    }
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _is_client(node, aliases) and not _gets_security(node)
    )


def test_every_kafka_client_built_gets_the_security_options() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in SCANNED
        for line in clients_without_security(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], (
        "pass **kafka_python_options / aiokafka_options / faust_options (engine.kafka.security):\n"
        + "\n".join(offenders)
    )


def test_the_scan_finds_a_client_without_them_however_it_is_built() -> None:
    source = (
        "from kafka import KafkaProducer as Make\n"
        "import faust, aiokafka\n"
        "p = Make(bootstrap_servers='x')\n"
        "c = aiokafka.AIOKafkaConsumer(**kafka_python_options(security_for('x')))\n"
        "a = faust.App('id', broker='kafka://x')\n"
        "d = aiokafka.AIOKafkaConsumer(**other_options())\n"
    )
    assert clients_without_security(source) == [3, 5, 6]


def test_the_scan_covers_every_factory_of_the_kafka_layer() -> None:
    scanned = {path.relative_to(ROOT).as_posix() for path in SCANNED}
    assert {
        "engine/kafka/producer.py",
        "engine/kafka/consumer.py",
        "engine/kafka/admin.py",
        "engine/kafka/lag.py",
        "engine/kafka/tail.py",
        "engine/kafka/faust_app.py",
        "tests/integration/harness.py",
    } <= scanned


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    default = Settings().kafka_security
    assert default == KafkaSecurity()
    assert kafka_python_options(default) == {"security_protocol": "PLAINTEXT"}
    assert aiokafka_options(default) == {"security_protocol": "PLAINTEXT"}
    assert faust_options(default) == {"broker_credentials": None}


def test_sasl_settings_reach_each_library() -> None:
    sasl = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "engine",
        "sasl_plain_password": "s3cret",
    }
    assert kafka_python_options(SASL) == sasl
    assert aiokafka_options(SASL) == sasl
    credentials = faust_options(SASL)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "engine",
        "s3cret",
        "SCRAM-SHA-512",
    )
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert "s3cret" not in repr(SASL)


def test_the_clients_themselves_take_the_options() -> None:
    """The options are names each library knows (a typo would be a TypeError or ignored)."""
    tls = KafkaSecurity(protocol=SecurityProtocol.SASL_SSL, username="engine", password="x")
    for client in (KafkaConsumer, KafkaProducer, KafkaAdminClient):
        assert set(kafka_python_options(tls)) <= set(client.DEFAULT_CONFIG), client

    async def aiokafka_password() -> str:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **aiokafka_options(SASL))
        password = str(producer.client._sasl_plain_password)
        await producer.stop()
        return password

    assert asyncio.run(aiokafka_password()) == "s3cret"
    app = faust.App("security-test", broker="kafka://127.0.0.1:1", **faust_options(SASL))
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "engine"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A self-signed CA certificate, and a client certificate and key (the CA's own)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "client.key", folder / "client.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=kafka.example", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, cert, key


def test_tls_settings_become_one_context_for_every_library(
    certificates: tuple[Path, Path, Path],
) -> None:
    cafile, certfile, keyfile = certificates
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="engine",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=cafile,
        kafka_ssl_certfile=certfile,
        kafka_ssl_keyfile=keyfile,
        kafka_ssl_check_hostname=False,
    )
    security = settings.kafka_security
    context = tls_context(security)

    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname is False
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kafka.example"),),)]
    assert kafka_python_options(security)["ssl_context"] is context
    assert kafka_python_options(security)["ssl_check_hostname"] is False
    assert aiokafka_options(security)["ssl_context"] is context
    credentials = faust_options(security)["broker_credentials"]
    assert (credentials.protocol.value, credentials.ssl_context) == ("SASL_SSL", context)


def test_tls_without_sasl_is_faust_ssl_credentials(certificates: tuple[Path, Path, Path]) -> None:
    cafile, _, _ = certificates
    security = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=cafile).kafka_security

    credentials = faust_options(security)["broker_credentials"]

    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context is tls_context(security)
    assert aiokafka_options(security) == {
        "security_protocol": "SSL",
        "ssl_context": tls_context(security),
    }


def test_the_process_security_comes_from_the_settings_once_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_security, "_process", None)
    assert kafka_security.process_security() == KafkaSecurity()
    kafka_security.use_for_this_process(SASL)
    assert kafka_security.process_security() is SASL
    monkeypatch.setattr(kafka_security, "_process", None)
