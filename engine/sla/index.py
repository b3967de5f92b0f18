"""Deadlines indexed by due time, one heap per owned partition.

A tick asks each owned partition's heap for what is due: it looks at the top of each heap
and pops only due entries, so its cost grows with what is due, not with what is open.
Rescheduling a ticket pushes a new entry and leaves the old one behind; a stale entry is
recognised when popped (its due time is no longer the ticket's) and dropped.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime


class _PartitionIndex:
    __slots__ = ("due", "heap")

    def __init__(self) -> None:
        self.heap: list[tuple[datetime, str]] = []
        self.due: dict[str, datetime] = {}

    def schedule(self, ticket_id: str, due_at: datetime) -> None:
        if self.due.get(ticket_id) == due_at:
            return
        self.due[ticket_id] = due_at
        heapq.heappush(self.heap, (due_at, ticket_id))

    def pop_due(self, now: datetime) -> list[str]:
        found = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            due_at, ticket_id = heapq.heappop(heap)
            if self.due.get(ticket_id) == due_at:
                del self.due[ticket_id]
                found.append(ticket_id)
        if len(heap) > 2 * len(self.due) + 64:  # mostly stale entries: compact
            self.heap = [(due_at, ticket_id) for ticket_id, due_at in self.due.items()]
            heapq.heapify(self.heap)
        return found


class DueIndex:
    """The next alert time of every armed ticket of the owned partitions."""

    def __init__(self) -> None:
        self._partitions: dict[int, _PartitionIndex] = {}

    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._partitions)

    def __len__(self) -> int:
        return sum(len(index.due) for index in self._partitions.values())

    def assign(self, partition: int, entries: Iterable[tuple[str, datetime]]) -> None:
        """Own ``partition`` with these (ticket, due) entries, replacing what it had."""
        index = _PartitionIndex()
        for ticket_id, due_at in entries:
            index.due[ticket_id] = due_at
        index.heap = [(due_at, ticket_id) for ticket_id, due_at in index.due.items()]
        heapq.heapify(index.heap)
        self._partitions[partition] = index

    def revoke(self, partition: int) -> None:
        self._partitions.pop(partition, None)

    def schedule(self, partition: int, ticket_id: str, due_at: datetime) -> None:
        index = self._partitions.get(partition)
        if index is not None:
            index.schedule(ticket_id, due_at)

    def cancel(self, partition: int, ticket_id: str) -> None:
        index = self._partitions.get(partition)
        if index is not None:
            index.due.pop(ticket_id, None)

    def pop_due(self, now: datetime) -> list[tuple[int, str]]:
        """The (partition, ticket) entries due at ``now``, removed from the index."""
        return [
            (partition, ticket_id)
            for partition, index in self._partitions.items()
            for ticket_id in index.pop_due(now)
        ]
