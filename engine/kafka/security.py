"""How every Kafka client of the engine authenticates and encrypts: one ``KafkaSecurity``
(from the ``ENGINE_KAFKA_*`` settings, checked once at load) turned into each client
library's options here, and nowhere else.

The factories (``engine.kafka.producer``, ``consumer``, ``admin``, ``lag``, ``tail``,
``faust_app``) add ``kafka_python_options``, ``aiokafka_options`` or ``faust_options`` to
every client they build; ``tests/unit/kafka/test_client_security.py`` fails when a client
is built without them. The security is the process's (``process_security``): a process
has one set of settings, and the factories are called deep inside the components, which
know their bootstrap servers but not the credentials (decision 63).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed

from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.settings import Settings


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


@dataclass(frozen=True)
class KafkaSecurity:
    """What the clients present to the brokers. Built by ``Settings.kafka_security`` once
    the settings agree; PLAINTEXT by default."""

    protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    mechanism: SaslMechanism = SaslMechanism.PLAIN
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        return self.protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    def described(self) -> str:
        """For logs and errors: never the password."""
        who = f" as {self.username!r} ({self.mechanism})" if self.uses_sasl else ""
        return f"{self.protocol}{who}"


def password_in_file(path: Path) -> str:
    """The first line of ``path`` (a password file)."""
    text = path.read_text(encoding="utf-8")
    return text.splitlines()[0] if text.strip() else ""


def kafka_security_problem(settings: Settings) -> str | None:
    """Why the Kafka security settings do not agree, naming the setting; None when they
    do. A credential or a certificate given without the protocol that uses it is an
    error, not ignored: the clients would connect without it."""
    protocol = settings.kafka_security_protocol
    sasl = protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)
    tls = protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
    has_password = bool(settings.kafka_sasl_password.get_secret_value())
    password_file = settings.kafka_sasl_password_file
    if sasl and not settings.kafka_sasl_username:
        return f"kafka_sasl_username is needed with kafka_security_protocol {protocol}"
    if sasl and has_password == (password_file is not None):
        return (
            f"kafka_security_protocol {protocol} needs exactly one of kafka_sasl_password "
            "and kafka_sasl_password_file"
        )
    if sasl and password_file is not None and not password_in_file(password_file):
        return f"kafka_sasl_password_file {password_file} has no password on its first line"
    if not sasl and (settings.kafka_sasl_username or has_password or password_file):
        return (
            "kafka_sasl_username/kafka_sasl_password(_file) are set but "
            f"kafka_security_protocol is {protocol}: set SASL_PLAINTEXT or SASL_SSL"
        )
    tls_files = {
        "kafka_ssl_cafile": settings.kafka_ssl_cafile,
        "kafka_ssl_certfile": settings.kafka_ssl_certfile,
        "kafka_ssl_keyfile": settings.kafka_ssl_keyfile,
    }
    given = [name for name, path in tls_files.items() if path is not None]
    if not tls and given:
        return (
            f"{', '.join(given)} set but kafka_security_protocol is {protocol}: set SSL or SASL_SSL"
        )
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        return "kafka_ssl_certfile and kafka_ssl_keyfile go together"
    if tls:
        try:
            tls_context(settings.kafka_security)
        except (ssl.SSLError, OSError) as error:
            return f"{', '.join(given) or 'the TLS settings'} cannot be used: {error}"
    return None


@functools.cache
def tls_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The one TLS context of the process's clients (None without TLS): TLS 1.2 or newer,
    the broker's certificate checked against ``cafile`` (else the system's CAs) and, unless
    turned off, its host name; the client's certificate when one is given."""
    if not security.uses_tls:
        return None
    context = ssl.create_default_context(cafile=str(security.cafile) if security.cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = security.check_hostname
    if security.certfile is not None:
        context.load_cert_chain(
            str(security.certfile), str(security.keyfile) if security.keyfile else None
        )
    return context


def kafka_python_options(security: KafkaSecurity) -> dict[str, Any]:
    """Options of kafka-python's producer, consumer and admin client."""
    options: dict[str, Any] = {"security_protocol": str(security.protocol)}
    if security.uses_tls:
        options["ssl_context"] = tls_context(security)
        options["ssl_check_hostname"] = security.check_hostname
    if security.uses_sasl:
        options |= {
            "sasl_mechanism": str(security.mechanism),
            "sasl_plain_username": security.username,
            "sasl_plain_password": security.password,
        }
    return options


def aiokafka_options(security: KafkaSecurity) -> dict[str, Any]:
    """Options of aiokafka's producer and consumer: kafka-python's names, but host names
    are checked only through the TLS context."""
    options = kafka_python_options(security)
    options.pop("ssl_check_hostname", None)
    return options


def faust_options(security: KafkaSecurity) -> dict[str, Any]:
    """A faust app's ``broker_credentials``, which faust turns into the options of every
    aiokafka client it builds (consumer, producer, topic creation)."""
    import faust  # only the faust apps need it, and it is slow to import

    credentials: faust.types.auth.CredentialsT | None
    if security.uses_sasl:
        credentials = faust.SASLCredentials(
            username=security.username,
            password=security.password,
            ssl_context=tls_context(security),
            mechanism=str(security.mechanism),
        )
    elif security.uses_tls:
        context = tls_context(security)
        assert context is not None
        credentials = faust.SSLCredentials(context)
    else:
        credentials = None
    return {"broker_credentials": credentials}


class KafkaAuthenticationError(EngineError):
    """A broker refused the engine's SASL credentials: retrying will not help."""


# How long the credentials check waits for a broker's answer.
AUTHENTICATION_CHECK_SECONDS = 10.0


ACCEPTED = "accepted"


async def _answer(bootstrap: str, security: KafkaSecurity) -> str | None:
    """ACCEPTED, the broker's reason for a refusal, or None when no broker answered."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            connection = await create_conn(
                host.strip("[]"),
                int(port),
                client_id="ticketing-engine-credentials-check",
                request_timeout_ms=int(AUTHENTICATION_CHECK_SECONDS * 1000),
                **aiokafka_options(security),
            )
        except SaslAuthenticationFailed as refused:
            return refused.args[0] if refused.args else str(refused)
        except Exception:  # unreachable or unusable: the clients will say so themselves
            continue
        connection.close()
        return ACCEPTED
    return None


def broker_answer(bootstrap: str, security: KafkaSecurity) -> str | None:
    """ACCEPTED when a broker accepts ``security``'s SASL credentials, the broker's reason
    when it refuses them, None when no broker answers. kafka-python reads a refusal as a
    lost connection and retries until its timeout; aiokafka reads the broker's answer, so
    it asks (in a thread of its own: the caller may run an event loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _answer(bootstrap, security)).result()


_accepted: set[tuple[str, KafkaSecurity]] = set()


def security_for(bootstrap: str) -> KafkaSecurity:
    """The process's security for a client of ``bootstrap``, its SASL credentials checked
    first: a refusal raises KafkaAuthenticationError naming the broker's reason, instead
    of a client retrying for ever. Checked until a broker accepts them, then no more."""
    security = process_security()
    if not security.uses_sasl or (bootstrap, security) in _accepted:
        return security
    answer = broker_answer(bootstrap, security)
    if answer == ACCEPTED:
        _accepted.add((bootstrap, security))
    elif answer is not None:
        raise KafkaAuthenticationError(
            f"Kafka at {bootstrap} refused the engine's {security.described()} "
            f"authentication: {answer}. Check ENGINE_KAFKA_SASL_USERNAME and "
            "ENGINE_KAFKA_SASL_PASSWORD (or ENGINE_KAFKA_SASL_PASSWORD_FILE)"
        )
    return security


_process: KafkaSecurity | None = None


def use_for_this_process(security: KafkaSecurity) -> None:
    """Set the security every client of this process uses (the CLI does, once the
    settings are loaded)."""
    global _process
    _process = security


def process_security() -> KafkaSecurity:
    """The security of this process's clients: as set by ``use_for_this_process``, else
    read once from the settings (environment and config file) of the process."""
    global _process
    if _process is None:
        from engine.settings import Settings  # the settings declare this module's types

        _process = Settings().kafka_security
    return _process
