"""The processor's view of the balances: whatever a record of the compacted topic holds,
applying it never raises (a raise makes the follower start over from the start, for good,
and triage would route without balances)."""

from datetime import UTC, datetime

from engine.contract import to_json
from engine.entitlements.follower import BalancesFollower
from engine.entitlements.ledger import balance_record, opening_balance

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_every_record_of_the_balances_topic_is_applied_or_passed_over_without_raising() -> None:
    follower = BalancesFollower("127.0.0.1:1")
    for customer, hours in (("acme", 2.0), ("gone", 1.0)):
        record = balance_record(opening_balance(customer, hours), "c", NOW, "test")
        follower.apply(customer.encode(), to_json(record))
    follower.apply(b"gone", None)
    follower.apply(b"\xff\xfe not utf-8", None)
    follower.apply(b"x", b"not json {")
    follower.apply(None, b"\xff\xfe")
    assert follower.hours_left == {"acme": 2.0}
