"""The stall watchdog of the faust workers (decision 5): a worker idle while records wait
past its committed offset exits, to be restarted.

faust-streaming 0.15.3 can mark a record fetched during a rebalance as read without
handing it to the agent; the record then waits until the next restart. The processor and
the SLA worker check for it every ``STALL_CHECK_SECONDS`` and exit with ``EXIT_STALLED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STALL_CHECK_SECONDS = 10.0
STALL_AFTER_SECONDS = 20.0
EXIT_STALLED = 75


def stalled_partitions(
    committed: Mapping[Any, int | None],
    highwaters: Mapping[Any, int],
    idle_seconds: float,
    stall_after: float = STALL_AFTER_SECONDS,
) -> list[Any]:
    """The owned partitions with records past the committed offset, when nothing has been
    processed for ``stall_after`` seconds; empty otherwise."""
    if idle_seconds < stall_after:
        return []
    return [tp for tp, high in highwaters.items() if (committed.get(tp) or 0) < high]
