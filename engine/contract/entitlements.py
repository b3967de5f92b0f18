"""The entitlements family: top-ups of prepaid hours and the balances."""

from __future__ import annotations

from pydantic import Field

from engine.contract.base import Record


class EntitlementTopUpData(Record):
    """Prepaid support hours bought by a customer (DOMAIN.md Entitlements)."""

    customer_id: str = Field(min_length=1)
    hours: float = Field(gt=0)
    reference: str = Field(min_length=1, description="Order or invoice: one top-up per reference")
    actor: str = Field(min_length=1)


class EntitlementBalanceData(Record):
    """A customer's support-hours balance: the directory's hours, plus top-ups, minus the
    time spent on their tickets."""

    customer_id: str
    initial_hours: float = Field(ge=0, description="From the customer directory")
    topped_up_hours: float = Field(ge=0)
    spent_minutes: int = Field(ge=0)
    hours_left: float = Field(description="Negative: more time was spent than bought")
    last_ticket_id: str | None = Field(description="The ticket whose time was last deducted")
    recent_event_ids: tuple[str, ...] = Field(
        description="The last events applied, newest last; a redelivered one is recognised"
    )
