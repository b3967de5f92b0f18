"""Downstream consumers of the engine's topics: the customer notifier today; tier workers
and bridges (bug tracker, upstream) are further consumers of the same plain-JSON topics."""
