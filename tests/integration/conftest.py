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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)
