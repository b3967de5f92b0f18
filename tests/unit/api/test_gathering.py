"""The API's publisher lets concurrent requests' events share a produce request, and still
answers each caller only once Kafka acknowledged its own event. No clocks here: the holds
are an hour long unless a test waits for one to end, and only the order of events is
checked."""

from __future__ import annotations

import asyncio

import pytest

from engine.api.gathering import GatheringPublisher
from engine.errors import PublishError

HOUR = 3600.0


class Broker:
    """A publisher whose acks the test gives, one call at a time."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._acks: dict[bytes, asyncio.Future[None]] = {}

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.received.append(value)
        self._acks[value] = asyncio.get_running_loop().create_future()
        await self._acks[value]

    def ack(self, *values: bytes, error: Exception | None = None) -> None:
        for value in values:
            if error is None:
                self._acks[value].set_result(None)
            else:
                self._acks[value].set_exception(error)


async def turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def start(publisher: GatheringPublisher, value: bytes) -> asyncio.Task[None]:
    return asyncio.ensure_future(publisher.publish("topic", b"key", value))


async def busy_stretch(publisher: GatheringPublisher, broker: Broker, *values: bytes) -> None:
    """``values`` in flight together, then all acknowledged: the publisher is idle again."""
    tasks = [start(publisher, value) for value in values]
    await turns()
    broker.ack(*values)
    await asyncio.gather(*tasks)


def test_a_lone_event_is_not_held_and_answered_only_after_its_ack() -> None:
    async def main() -> None:
        broker = Broker()
        publisher = GatheringPublisher(broker, HOUR)
        task = start(publisher, b"a")
        await turns()
        assert broker.received == [b"a"] and not task.done()  # sent at once, not answered
        broker.ack(b"a")
        await task
        task = start(publisher, b"b")  # still alone: the last peak was one
        await turns()
        assert broker.received == [b"a", b"b"]
        broker.ack(b"b")
        await task

    asyncio.run(main())


def test_after_a_burst_the_next_events_leave_together_once_as_many_arrived() -> None:
    async def main() -> None:
        broker = Broker()
        publisher = GatheringPublisher(broker, HOUR)
        await busy_stretch(publisher, broker, b"1", b"2", b"3")

        first, second = start(publisher, b"a"), start(publisher, b"b")
        await turns()
        assert broker.received == [b"1", b"2", b"3"]  # held: three were in flight before
        third = start(publisher, b"c")
        await turns()
        assert broker.received[3:] == [b"a", b"b", b"c"]
        late = start(publisher, b"d")  # the producer is busy: joins the next request
        await turns()
        assert broker.received[-1] == b"d"
        broker.ack(b"a", b"b", b"c", b"d")
        await asyncio.gather(first, second, third, late)

    asyncio.run(main())


def test_a_hold_ends_when_its_time_is_up() -> None:
    async def main() -> None:
        broker = Broker()
        publisher = GatheringPublisher(broker, 0.01)
        await busy_stretch(publisher, broker, b"1", b"2")

        task = start(publisher, b"a")
        sent = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, sent.set)
        await sent.wait()  # the second event never comes
        assert broker.received[2:] == [b"a"]
        broker.ack(b"a")
        await task
        task = start(publisher, b"b")  # the last peak was one: no hold any more
        await turns()
        assert broker.received[3:] == [b"b"]
        broker.ack(b"b")
        await task

    asyncio.run(main())


def test_a_refusal_reaches_its_caller_and_the_others_are_answered() -> None:
    async def main() -> None:
        broker = Broker()
        publisher = GatheringPublisher(broker, HOUR)
        await busy_stretch(publisher, broker, b"1", b"2")
        refused, accepted = start(publisher, b"a"), start(publisher, b"b")
        await turns()
        broker.ack(b"a", error=PublishError("Kafka did not acknowledge within 1s"))
        broker.ack(b"b")
        with pytest.raises(PublishError):
            await refused
        await accepted

    asyncio.run(main())


def test_a_held_caller_that_goes_away_releases_those_behind_it() -> None:
    async def main() -> None:
        broker = Broker()
        publisher = GatheringPublisher(broker, HOUR)
        await busy_stretch(publisher, broker, b"1", b"2", b"3")
        holder, behind = start(publisher, b"a"), start(publisher, b"b")
        await turns()
        holder.cancel()
        await turns()
        assert broker.received[3:] == [b"b"]
        broker.ack(b"b")
        await behind
        assert holder.cancelled()

    asyncio.run(main())
