"""The real Kafka broker for the integration tests: started once per session.

A broker that cannot start fails the run; these tests never skip. Each test module has
topics of its own on it (``ENGINE_TOPIC_PREFIX``, see ``topic_prefix``), so no module's
engine replays another module's tickets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.contract.topics import declared_topics, named
from engine.kafka import broker
from engine.kafka.admin import provision
from engine.settings import Settings
from tests.integration.harness import (
    EngineProcess,
    TopicReader,
    engine_env,
    local_broker_settings,
    started_broker,
)
from tests.integration.mail_relay import relay  # noqa: F401  (a fixture of every module)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = local_broker_settings(tmp_path_factory.mktemp("kafka"))
    yield from started_broker(settings)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Settings]:
    """A broker of the test's own, with the topics, for tests that stop and restart it."""
    settings = local_broker_settings(tmp_path / "broker")
    broker.start(settings)
    provision(settings.kafka_bootstrap, declared_topics())
    yield settings
    broker.stop(settings)


@pytest.fixture(scope="module")
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """The module's own topic prefix, from its name: ``test_email_to_tier`` -> ``email_to_tier.``"""
    module: str = request.module.__name__
    return module.rsplit(".", 1)[-1].removeprefix("test_") + "."


@pytest.fixture(scope="module")
def topics(kafka: str, topic_prefix: str) -> str:
    """The session broker, with this module's own topics provisioned on it."""
    provision(kafka, declared_topics(prefix=topic_prefix))
    return kafka


@pytest.fixture(scope="module")
def engine(
    topics: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    """``engine up --bootstrap-servers`` against the session broker, on the module's topics."""
    state = tmp_path_factory.mktemp("engine")
    running = EngineProcess(engine_env(state, topics, topic_prefix), state / "engine.log")
    running.start("--bootstrap-servers", topics)
    yield running
    running.stop()


@pytest.fixture
def read_topic(kafka: str, topic_prefix: str) -> Iterator[object]:
    """Opens readers of the module's topics: ``read_topic(TICKET_EVENTS)``."""
    readers: list[TopicReader] = []

    def open_reader(topic: str) -> TopicReader:
        reader = TopicReader(kafka, named(topic, topic_prefix))
        readers.append(reader)
        return reader

    yield open_reader
    for reader in readers:
        reader.close()


# `make test` runs the integration tests as two pytest processes at once, each with its
# own session broker (most of their time is spent waiting on the broker and the engine):
# these modules are the second lane, every other module the first. About half the time
# each; a module added later joins the first lane.
SECOND_LANE = frozenset(
    {
        "test_chaos",
        "test_escalations",
        "test_kafka_sasl",
        "test_kafka_tls",
        "test_mail_properties",
        "test_postfix_in_front",
        "test_snmp_spool",
        "test_up",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lane",
        choices=("all", "first", "second"),
        default="all",
        help="run only the first or the second lane of the integration tests (make test)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)
    lane = config.getoption("--lane")
    if lane == "all":
        return
    modules = {Path(str(item.fspath)).stem for item in items}
    unknown = SECOND_LANE - modules
    if unknown:
        raise pytest.UsageError(f"the second lane names modules not collected: {sorted(unknown)}")
    kept = [
        item for item in items if (Path(str(item.fspath)).stem in SECOND_LANE) == (lane == "second")
    ]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept
