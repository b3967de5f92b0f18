"""classify(message, ruleset) -> Classification: which rules fire, and what they decide."""

from __future__ import annotations

from engine.models import Classification, Priority, RuleMatch, TicketMessage
from engine.rules.ruleset import Rule, RuleSet
from engine.rules.text import Words, words


def _phrase(found: Words) -> str:
    return " ".join(found)


def fired_rules(message: TicketMessage, ruleset: RuleSet) -> list[tuple[Rule, RuleMatch]]:
    """The rules whose conditions all hold, in file order, with what matched."""
    by_field = {
        "subject": ruleset.phrase_index.find(words(message.subject)),
        "body": ruleset.phrase_index.find(words(message.body)),
    }
    fired = []
    for index, rule in enumerate(ruleset.rules):
        matcher = rule.match
        if matcher.channels and message.channel not in matcher.channels:
            continue
        evidence: list[str] = []
        fields: list[str] = []
        for field, found in by_field.items():
            if index in found:
                fields.append(field)
                evidence.extend(_phrase(phrase) for phrase in found[index])
        if matcher.phrases and not evidence:
            continue
        if not matcher.phrases:
            fields.append("channel")
            evidence.append(message.channel.value)
        fired.append(
            (rule, RuleMatch(rule_id=rule.id, field="+".join(fields), matched=tuple(evidence)))
        )
    return fired


def classify(message: TicketMessage, ruleset: RuleSet) -> Classification:
    fired = fired_rules(message, ruleset)
    priorities = [(rule.set.priority, rule) for rule, _ in fired if rule.set.priority]
    categories = [(rule.set.category, rule) for rule, _ in fired if rule.set.category]
    explanation: list[str] = []

    priority: Priority
    if priorities:
        priority, deciding = max(priorities, key=lambda pair: pair[0].severity)
        cited = f" ({deciding.domain_rule})" if deciding.domain_rule else ""
        explanation.append(f"priority {priority} from rule {deciding.id}{cited}: most severe fired")
    else:
        priority = ruleset.defaults.priority
        explanation.append(f"priority {priority}: no rule set one, the default")

    if categories:
        category, first = categories[0]
        explanation.append(f"category {category} from rule {first.id}: first in file order")
    else:
        category = ruleset.defaults.category
        explanation.append(f"category {category}: no rule set one, the default")

    tags: list[str] = []
    for rule, _ in fired:
        tags.extend(tag for tag in rule.set.tags if tag not in tags)

    return Classification(
        priority=priority,
        category=category,
        tags=tuple(tags),
        matches=tuple(match for _, match in fired),
        explanation=tuple(explanation),
        ruleset_version=ruleset.fingerprint,
    )
