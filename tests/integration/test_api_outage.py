"""Broker down: the API answers 503 with Retry-After, and what the client retries after the
broker is back is one event, not a second ticket. A broker of its own, so others go on."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from engine.contract.topics import TICKET_EVENTS
from engine.kafka import broker
from engine.settings import Settings
from tests.integration.api_process import api_process, post_json
from tests.integration.harness import TopicReader, wait_until


def test_broker_down_gives_503_and_the_retry_is_one_event(
    own_broker: Settings, tmp_path: Path
) -> None:
    bootstrap = own_broker.kafka_bootstrap
    conversation = uuid.uuid4().hex
    with api_process(bootstrap, tmp_path / "api") as url:
        chat = f"{url}/chat/conversations/{conversation}/messages"
        before = {"message_id": "m1", "sender": "ana@acme.example", "text": "la central cayó"}
        status, _, accepted = post_json(chat, before)
        assert status == 202, accepted

        broker.stop(own_broker)
        during = {**before, "message_id": "m2", "text": "¿siguen ahí?"}
        status, headers, refused = post_json(chat, during)
        assert status == 503, refused
        assert int(headers["Retry-After"]) > 0 and "retry" in refused["error"]

        broker.start(own_broker)

        def retried_by_client() -> dict[str, str] | None:
            status, _, body = post_json(chat, during)
            if status == 202:
                return body  # type: ignore[no-any-return]
            assert status == 503, body  # still reconnecting: a client retries too
            time.sleep(1)
            return None

        retried = wait_until(retried_by_client, 90, "the API to accept again")

    assert retried["ticket_id"] == accepted["ticket_id"]
    reader = TopicReader(bootstrap, TICKET_EVENTS)
    try:
        reader.wait_for(lambda key, value: value["event_id"] == retried["event_id"])
        of_conversation = reader.matching(
            lambda key, value: value["data"].get("conversation_id") == conversation
        )
    finally:
        reader.close()
    # The refused attempt may still have reached Kafka (its ack was what timed out); if so
    # it is the same event, which the processor applies once.
    assert {event["event_id"] for event in of_conversation} == {
        accepted["event_id"],
        retried["event_id"],
    }
    assert {event["data"]["message_id"] for event in of_conversation} == {"m1", "m2"}
