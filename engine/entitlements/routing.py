"""A new ticket of a customer without hours left goes to the ``entitlement_needed``
special route (DOMAIN.md Entitlements: a recurring customer's ticket is checked for
remaining hours before it is served). It is never dropped: it keeps its tier too."""

from __future__ import annotations

from collections.abc import Mapping

from engine.contract import Classification, CustomerProfile, RouteDecision, SpecialRoute


def entitlement_check(
    decision: RouteDecision,
    classification: Classification,
    customer: CustomerProfile | None,
    hours_left: Mapping[str, float],
) -> tuple[RouteDecision, Classification]:
    """The decision and classification, with the special route and the reason added when
    the customer has a metered balance and no hours left."""
    if customer is None or customer.customer_id not in hours_left:
        return decision, classification
    left = hours_left[customer.customer_id]
    if left > 0 or SpecialRoute.ENTITLEMENT_NEEDED in decision.special_routes:
        return decision, classification
    routes = (*decision.special_routes, SpecialRoute.ENTITLEMENT_NEEDED)
    note = (
        f"special route entitlement_needed: customer {customer.customer_id} has "
        f"{left:g} support hours left (DOMAIN.md Entitlements)"
    )
    return (
        decision.model_copy(update={"special_routes": routes}),
        classification.model_copy(update={"explanation": (*classification.explanation, note)}),
    )
