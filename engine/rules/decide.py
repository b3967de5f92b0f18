"""decide(message, ruleset): classification and route together, as the processor, ``engine
classify``, ``engine rules test`` and ``engine rules diff`` all make them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.contract import Classification, RouteDecision, TicketMessage
from engine.rules.classify import classify
from engine.rules.route import route
from engine.rules.ruleset import RuleSet


@dataclass(frozen=True)
class Decision:
    classification: Classification
    route: RouteDecision

    def summary(self) -> dict[str, Any]:
        """The decided fields, as ``engine classify`` prints and rule tests compare them."""
        return {
            "priority": self.classification.priority.value,
            "category": self.classification.category,
            "tier": self.route.tier.value,
            "routes": [special.value for special in self.route.special_routes],
            "tags": list(self.classification.tags),
            "skills": list(self.classification.skills),
        }

    def explanation(self) -> dict[str, Any]:
        return {
            "rules": [
                {"rule_id": m.rule_id, "field": m.field, "matched": list(m.matched)}
                for m in self.classification.matches
            ],
            "reasons": list(self.classification.explanation),
            "impact": [
                {"fact": f.fact, "value": f.value, "evidence": list(f.evidence)}
                for f in self.classification.impact
            ],
            "route_path": list(self.route.route_path),
            "ruleset_version": self.classification.ruleset_version,
        }


def decide(message: TicketMessage, ruleset: RuleSet) -> Decision:
    classification = classify(message, ruleset)
    return Decision(classification, route(classification, message, ruleset.routes))
