"""Settings: environment variables (``ENGINE_*``) over an optional TOML file over defaults.

The file is named by ``ENGINE_CONFIG_FILE`` or ``engine --config FILE``. Everything is
validated once, at start-up; an invalid value stops the process with the name of the field.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.contract.topics import MAX_SPOOLED_MAIL_BYTES, PREFIX
from engine.kafka.security import (
    KafkaSecurity,
    SaslMechanism,
    SecurityProtocol,
    kafka_security_problem,
    password_in_file,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A local cluster's node N listens on the broker and controller ports plus 10 x (N - 1).
NODE_PORT_STEP = 10


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ticketing-engine"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENGINE_", extra="forbid", frozen=True)

    bootstrap_servers: str = Field(
        default="",
        description="Kafka bootstrap servers (host:port,...). Empty: the engine's local broker.",
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where the local broker keeps its data and the engine its files.",
    )
    broker_port: int = Field(default=9092, ge=1, le=65535, description="Local broker port.")
    controller_port: int = Field(
        default=9093, ge=1, le=65535, description="Local broker's KRaft controller port."
    )
    broker_heap: str = Field(default="512m", description="Local broker's JVM heap (-Xmx).")
    kafka_deploy_dir: Path = Field(
        default=PROJECT_ROOT / "deploy" / "kafka",
        description="Folder with the POM that fetches Kafka's jars and their lib/ folder.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=4,
        description="Processes engine up runs of each component that can share the work "
        "(smtp, mail-parser, api, processor, sla, notifier, workers); the entitlements "
        "ledger and the SNMP receiver stay one.",
    )
    listen_reuse_port: bool = Field(
        default=False,
        description="Let several SMTP ingestors and API processes listen on one port "
        "(SO_REUSEPORT, the kernel spreads connections); engine up --replicas sets it.",
    )
    broker_nodes: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Nodes of the local broker: 1, or a KRaft cluster of combined "
        "broker+controller nodes, node N on ENGINE_BROKER_PORT and ENGINE_CONTROLLER_PORT "
        "plus 10 x (N - 1).",
    )
    replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replication factor of the topics the engine creates; unset, 3 on a local "
        "broker of three or more nodes (with min.insync.replicas 2).",
    )
    partitions: int = Field(
        default=6, ge=1, description="Partitions of the ticket topics (keyed by ticket id)."
    )

    smtp_host: str = Field(default="127.0.0.1", description="SMTP ingestor listen address.")
    smtp_port: int = Field(default=2525, ge=0, le=65535, description="SMTP ingestor port.")
    support_domains: Annotated[list[str], NoDecode] = Field(
        default=["support.example.com"],
        description="Recipient domains accepted by the SMTP ingestor (comma-separated).",
    )
    smtp_max_message_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1024,
        le=MAX_SPOOLED_MAIL_BYTES,
        description="Largest mail accepted (552 above); at most 12 MiB, so that the mail, "
        "base64-encoded, fits its record on the mail spool topic.",
    )
    smtp_tls_cert: Path | None = Field(
        default=None, description="PEM certificate for STARTTLS (with smtp_tls_key)."
    )
    smtp_tls_key: Path | None = Field(default=None, description="PEM key for STARTTLS.")
    smtp_require_tls: bool = Field(default=False, description="Refuse MAIL before STARTTLS (530).")
    smtp_auth_users_file: Path | None = Field(
        default=None, description="SMTP AUTH users (engine hash-password); offered after TLS."
    )
    smtp_archive_dir: Path | None = Field(
        default=None,
        description="Keep every accepted mail whole (attachments included) here, by SHA-256.",
    )
    smtp_sender_limit_per_minute: int = Field(
        default=30, ge=1, description="Mails one sender may send a minute (451 4.7.1 above)."
    )
    smtp_trusted_relays: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default=[],
        description="MTAs in front of the engine (addresses or networks, comma-separated) "
        "trusted to name each mail's original client by XFORWARD; nobody else may.",
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default=SecurityProtocol.PLAINTEXT,
        description="How every Kafka client of the engine talks to the brokers: PLAINTEXT, "
        "SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default=SaslMechanism.PLAIN,
        description="SASL mechanism (with SASL_*): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str = Field(default="", description="SASL user (with SASL_*).")
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""),
        description="SASL password (with SASL_*); or kafka_sasl_password_file.",
    )
    kafka_sasl_password_file: FilePath | None = Field(
        default=None,
        description="A file whose first line is the SASL password (instead of "
        "kafka_sasl_password).",
    )
    kafka_ssl_cafile: FilePath | None = Field(
        default=None,
        description="PEM CA certificates the brokers' certificates are checked against (with "
        "SSL or SASL_SSL); none: the system's.",
    )
    kafka_ssl_certfile: FilePath | None = Field(
        default=None,
        description="PEM client certificate for brokers that ask for one (with kafka_ssl_keyfile).",
    )
    kafka_ssl_keyfile: FilePath | None = Field(
        default=None, description="PEM key of kafka_ssl_certfile (unencrypted)."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        description="Check that a broker's certificate names the host the client connects to.",
    )
    kafka_ack_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Seconds an ingestor waits for Kafka's ack before telling the sender to retry.",
    )

    app_id: str = Field(
        default="ticketing-engine",
        description="Processor consumer group; the other groups and faust's internal topics "
        "are named after it. ENGINE_TOPIC_PREFIX (read from the environment only, like every "
        "topic name) is put in front of it.",
    )
    processor_store: Literal["rocksdict", "memory"] = Field(
        default="rocksdict",
        description="Where the processor keeps its ticket table: rocksdict (on disk under "
        "<state_dir>/processor; a restart reads only the state records written since) or "
        "memory (the whole tickets.state.v1 read again at every start).",
    )
    rules_file: Path | None = Field(
        default=None, description="Rule set (YAML). Empty: the shipped default rules."
    )
    customers_file: Path | None = Field(
        default=None, description="Customer directory (YAML or CSV). Empty: none known."
    )

    agents_file: Path | None = Field(
        default=None,
        description="Agents directory (YAML) for the tier workers and assignment notices; empty: "
        "neither.",
    )
    escalation_file: Path | None = Field(
        default=None,
        description="Escalation matrix (YAML): acceptance times and who is told when; "
        "empty: the built-in one (engine/workers/escalation.yaml).",
    )
    workers_tick_seconds: float = Field(
        default=5.0, gt=0, description="How often the tier workers look at the clock."
    )
    workers_metrics_port: int = Field(
        default=9471, ge=0, le=65535, description="Tier workers /metrics."
    )

    log_level: str = Field(
        default="WARN", pattern="^(DEBUG|INFO|WARN|ERROR)$", description="Log level."
    )
    notify_relay: str = Field(
        default="",
        pattern=r"^$|^[^:\s]+:\d+$",
        description="SMTP relay (host:port) for customer notices; empty: no notifier.",
    )
    notify_from: str = Field(
        default="soporte@support.example.com", description="From address of notices."
    )
    notify_default_language: str = Field(
        default="es", pattern="^(es|en)$", description="Notices' language when unknown."
    )
    notify_ack_unknown_senders: bool = Field(
        default=True,
        description="Acknowledge mail from senders the customer directory does not know; "
        "false: only known customers' mail is acknowledged (no backscatter to strangers).",
    )
    notifier_metrics_port: int = Field(
        default=9466, ge=0, le=65535, description="Notifier /metrics."
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the /metrics endpoints listen on."
    )
    smtp_metrics_port: int = Field(default=9464, ge=0, le=65535, description="SMTP /metrics.")
    mail_parser_metrics_port: int = Field(
        default=9470, ge=0, le=65535, description="Mail parser /metrics."
    )
    processor_metrics_port: int = Field(
        default=9465, ge=0, le=65535, description="Processor /metrics."
    )
    monitoring: bool = Field(
        default=False,
        description="engine up also runs a local Prometheus (deploy/monitoring/); "
        "same as engine up --monitoring.",
    )
    prometheus_port: int = Field(
        default=9090, ge=1, le=65535, description="The local Prometheus of engine up --monitoring."
    )
    prometheus_scrape_seconds: float = Field(
        default=15.0, gt=0, le=300, description="Its scrape and rule evaluation interval."
    )
    entitlements_metrics_port: int = Field(
        default=9472, ge=0, le=65535, description="Entitlements ledger /metrics."
    )
    sla_calendars_file: Path | None = Field(
        default=None, description="Business calendars (YAML). Empty: DOMAIN.md's and 24x7."
    )
    sla_warning_lead_minutes: float = Field(
        default=30.0, ge=0, description="Minutes before a deadline the SLA warning is sent."
    )
    sla_pause_while_waiting: bool = Field(
        default=True, description="No update obligation while waiting on the customer."
    )
    sla_tick_seconds: float = Field(
        default=1.0, gt=0, description="How often the SLA worker looks for due alerts."
    )
    sla_time_scale: float = Field(
        default=1.0,
        gt=0,
        description="SLA seconds per real second (3600: an hour a second); tests and demos.",
    )
    sla_time_origin: datetime = Field(
        default=datetime(2026, 1, 1, tzinfo=UTC),
        description="Where the compressed SLA timeline meets real time (with sla_time_scale).",
    )
    sla_metrics_port: int = Field(default=9467, ge=0, le=65535, description="SLA worker /metrics.")

    snmp_host: str = Field(default="127.0.0.1", description="SNMP receiver listen address.")
    snmp_port: int = Field(default=1162, ge=0, le=65535, description="SNMP receiver UDP port.")
    snmp_communities: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="SNMPv1/v2c communities accepted (comma-separated); none unless "
        "configured (engine up accepts 'public' when unset, with a warning).",
    )
    snmp_users_file: Path | None = Field(
        default=None, description="SNMPv3 users (YAML: names, SHA/SHA-2 and AES keys, engine ids)."
    )
    snmp_auth_priv_only: bool = Field(
        default=False, description="Accept SNMPv3 authPriv only; v1, v2c and lower levels refused."
    )
    snmp_engine_id: str = Field(
        default="",
        pattern=r"^(0x)?([0-9a-fA-F]{10,64})?$",
        description="The receiver's snmpEngineID (hex) that INFORM senders localise keys to; "
        "empty: generated at start.",
    )
    snmp_devices_file: Path | None = Field(
        default=None, description="Device directory (YAML): address -> device, customer, role."
    )
    snmp_mib_dirs: Annotated[list[Path], NoDecode] = Field(
        default=[], description="Vendor MIB directories (pysnmp-compiled modules), ':'-separated."
    )
    snmp_receive_buffer_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=65536,
        description="SO_RCVBUF asked for the SNMP socket (the kernel caps it at rmem_max).",
    )
    snmp_fold_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description="A storm's notifications of one alarm within this many seconds become one "
        "ticket event counting them (each is kept on snmp.traps.v1); 0: one event each.",
    )
    snmp_max_in_flight: int = Field(
        default=20000, ge=1, description="Notifications being stored at once; more are refused."
    )
    snmp_metrics_port: int = Field(default=9469, ge=0, le=65535, description="SNMP /metrics.")
    snmp_spool_dir: Path | None = Field(
        default=None,
        description="Where the SNMP receiver spools trap events Kafka did not take; "
        "none: <state_dir>/snmp-spool.",
    )
    snmp_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest SNMP trap spool on disk; beyond, the newest events are dropped "
        "and counted.",
    )

    @field_validator("snmp_communities", mode="before")
    @classmethod
    def _split_communities(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    api_host: str = Field(default="127.0.0.1", description="HTTP API listen address.")
    api_port: int = Field(default=8080, ge=0, le=65535, description="HTTP API port.")
    api_tokens_file: Path | None = Field(
        default=None, description="API bearer tokens (engine api-token); none: every call is 401."
    )
    api_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body or WebSocket message (413)."
    )
    api_rate_limit_per_minute: int = Field(
        default=600, ge=1, description="Requests one token may make a minute (429 above)."
    )
    api_rate_limit_burst: int = Field(
        default=60, ge=1, description="Requests one token may make at once before the limit."
    )
    api_chat_limit_per_conversation: int = Field(
        default=30, ge=1, description="Chat messages one conversation may send a minute (429)."
    )
    api_chat_limit_per_address: int = Field(
        default=120, ge=1, description="Chat messages one client address may send a minute (429)."
    )
    api_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default=[], description="Browser Origins allowed to call the API (comma-separated)."
    )
    api_metrics_port: int = Field(default=9468, ge=0, le=65535, description="HTTP API /metrics.")

    @field_validator("api_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("snmp_mib_dirs", mode="before")
    @classmethod
    def _split_mib_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("api_allowed_origins")
    @classmethod
    def _origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an Origin: scheme://host[:port], no path")
        return value

    @field_validator("support_domains", mode="before")
    @classmethod
    def _split_domains(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [str(part).strip().lower() for part in value]
        return value

    @field_validator("smtp_trusted_relays", mode="before")
    @classmethod
    def _split_relays(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [
                ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()
            ]
        return value

    @field_validator("app_id")
    @classmethod
    def _prefixed_like_the_topics(cls, value: str) -> str:
        return value if value.startswith(PREFIX) else PREFIX + value

    @field_validator("support_domains")
    @classmethod
    def _at_least_one_domain(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one support domain is needed, or the server relays nothing")
        return value

    @model_validator(mode="after")
    def _tls_settings_agree(self) -> Settings:
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            raise ValueError("smtp_tls_cert and smtp_tls_key go together")
        if self.smtp_tls_cert is None and (self.smtp_require_tls or self.smtp_auth_users_file):
            raise ValueError(
                "smtp_require_tls and smtp_auth_users_file need smtp_tls_cert and smtp_tls_key"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_agrees(self) -> Settings:
        problem = kafka_security_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        """What every Kafka client of the engine presents to the brokers."""
        password = self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_password_file is not None:
            password = password_in_file(self.kafka_sasl_password_file)
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=password,
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
            check_hostname=self.kafka_ssl_check_hostname,
        )

    @property
    def uses_local_broker(self) -> bool:
        return not self.bootstrap_servers

    @property
    def kafka_bootstrap(self) -> str:
        if self.bootstrap_servers:
            return self.bootstrap_servers
        return ",".join(
            f"127.0.0.1:{self.broker_port + NODE_PORT_STEP * node}"
            for node in range(self.broker_nodes)
        )

    @property
    def topic_replication_factor(self) -> int:
        """The topics' replication factor: as set, else 3 on a local cluster of 3 or more."""
        if "replication_factor" in self.model_fields_set or self.bootstrap_servers:
            return self.replication_factor
        return 3 if self.broker_nodes >= 3 else self.replication_factor

    @property
    def snmp_spool_path(self) -> Path:
        return self.snmp_spool_dir or self.state_dir / "snmp-spool"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("ENGINE_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
