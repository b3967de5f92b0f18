"""route(classification, message, tree) -> RouteDecision, in the manner of Alertmanager.

A route matches when all its matchers hold. Matching is depth-first: a matching route
hands the ticket to its first matching child, and becomes the destination itself when no
child matches. After a match, later siblings are tried only if the matched route has
``continue: true``. A child inherits its parent's tier unless it sets one; special routes
accumulate along the path. The first destination gives the tier; special routes are the
union over all destinations and the special routes the rules asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.contract import Classification, RouteDecision, SpecialRoute, TicketMessage, Tier
from engine.rules.ruleset import Route, RouteMatcher


@dataclass(frozen=True)
class _Destination:
    path: tuple[str, ...]
    tier: Tier
    special_routes: tuple[SpecialRoute, ...]


def _matches(matcher: RouteMatcher, classification: Classification, message: TicketMessage) -> bool:
    plan = message.customer.plan if message.customer else None
    return (
        (not matcher.priority or classification.priority in matcher.priority)
        and (not matcher.category or classification.category in matcher.category)
        and (not matcher.channel or message.channel in matcher.channel)
        and all(tag in classification.tags for tag in matcher.tags)
        and (not matcher.tags_any or any(tag in classification.tags for tag in matcher.tags_any))
        and (not matcher.customer_plan or plan in matcher.customer_plan)
    )


def _destinations(
    route: Route,
    classification: Classification,
    message: TicketMessage,
    path: tuple[str, ...],
    tier: Tier,
    special: tuple[SpecialRoute, ...],
) -> list[_Destination]:
    path = (*path, route.id)
    tier = route.tier or tier
    special = (*special, *(s for s in route.special_routes if s not in special))
    found: list[_Destination] = []
    for child in route.routes:
        if not _matches(child.match, classification, message):
            continue
        found.extend(_destinations(child, classification, message, path, tier, special))
        if not child.continue_:
            break
    return found or [_Destination(path, tier, special)]


def route(classification: Classification, message: TicketMessage, tree: Route) -> RouteDecision:
    assert tree.tier is not None, "validated at load: the root route sets a tier"
    destinations = _destinations(tree, classification, message, (), tree.tier, ())
    special: list[SpecialRoute] = list(classification.special_routes)
    path: list[str] = []
    for destination in destinations:
        special.extend(s for s in destination.special_routes if s not in special)
        path.extend(step for step in destination.path if step not in path)
    return RouteDecision(
        tier=destinations[0].tier,
        special_routes=tuple(special),
        route_path=tuple(path),
        ruleset_version=classification.ruleset_version,
    )
