"""classify(message, ruleset) -> Classification: which rules fire, and what they decide.

The combining semantics are documented in ``engine.rules.ruleset``.
"""

from __future__ import annotations

from typing import TypeVar

from engine.contract import (
    Classification,
    CustomerProfile,
    Priority,
    RuleMatch,
    SpecialRoute,
    TicketMessage,
    TrapFacts,
)
from engine.rules.assistant import MODELS, Assistant, Proposal, shipped_model, text_of
from engine.rules.combiner import describe_strongest, priority_inputs, shipped_combiner
from engine.rules.facts import StatedFacts, stated_facts
from engine.rules.impact import Assessment, MatrixRow, assess, describe, stated_impact
from engine.rules.ruleset import CustomerCondition, Rule, RuleSet, TrapCondition, version_key
from engine.rules.text import PhraseHit, clauses

_T = TypeVar("_T")
_BY_SEVERITY = sorted(Priority, key=lambda p: p.severity)
STATED = " (stated in the message)"


def _modules(customer: CustomerProfile | None, stated: StatedFacts) -> tuple[list[str], str]:
    """The customer's modules and where they come from: the directory when it lists any,
    else the message."""
    if customer is not None and customer.modules:
        return list(customer.modules), ""
    return [module.value for module in stated.modules], STATED


def _version(customer: CustomerProfile | None, stated: StatedFacts) -> tuple[str | None, str]:
    if customer is not None and customer.version:
        return customer.version, ""
    return (stated.version.value, STATED) if stated.version else (None, "")


def _customer_holds(
    condition: CustomerCondition, customer: CustomerProfile | None, stated: StatedFacts
) -> list[str] | None:
    """The evidence when the condition holds, else None. The version and the modules come
    from the directory when it knows them, else from what the message states."""
    if condition.known is not None and condition.known != (customer is not None):
        return None
    evidence = (
        [f"customer {'known' if customer else 'unknown'}"] if condition.known is not None else []
    )
    if condition.plan:
        if customer is None or customer.plan not in condition.plan:
            return None
        evidence.append(f"plan={customer.plan.value}")
    if condition.language:
        if customer is None or customer.language not in condition.language:
            return None
        evidence.append(f"language={customer.language}")
    if condition.modules_any:
        modules, origin = _modules(customer, stated)
        found = [module for module in modules if module in condition.modules_any]
        if not found:
            return None
        evidence.append(f"modules include {', '.join(found)}{origin}")
    for bound, below in ((condition.version_below, True), (condition.version_at_least, False)):
        if bound is None:
            continue
        version, origin = _version(customer, stated)
        if version is None:
            return None
        is_below = version_key(version) < version_key(bound)
        if is_below != below:
            return None
        evidence.append(f"version {version}{origin} {'<' if below else '>='} {bound}")
    return evidence


def _trap_holds(condition: TrapCondition, trap: TrapFacts | None) -> list[str] | None:
    if trap is None:
        return None
    evidence = []
    if condition.oid:
        if not any(trap.oid == oid or trap.oid.startswith(oid + ".") for oid in condition.oid):
            return None
        evidence.append(f"trap oid {trap.oid}")
    if condition.name:
        if trap.name not in condition.name:
            return None
        evidence.append(f"trap {trap.name}")
    if condition.device_role:
        if trap.device_role not in condition.device_role:
            return None
        evidence.append(f"device role {trap.device_role}")
    for wanted, values in condition.varbinds.items():
        bound = next((v for v in trap.varbinds if wanted in (v.oid, v.name)), None)
        if bound is None or (str(bound.value) not in values and bound.label not in values):
            return None
        evidence.append(f"{wanted}={bound.value}")
    return evidence


def _text_evidence(
    rule: Rule, index: int, message: TicketMessage, hits: dict[str, dict[int, list[PhraseHit]]]
) -> tuple[list[str], list[str]] | None:
    """(fields, evidence) when the rule's text conditions hold, else None."""
    matcher = rule.match
    searched = [field for field in matcher.fields if field in hits]
    for field in searched:
        if any(not hit.negated for hit in hits[field].get(2 * index + 1, ())):
            return None
    if not matcher.phrases and not matcher.regex:
        return [], []
    fields: list[str] = []
    evidence: list[str] = []
    for field in searched:
        for hit in hits[field].get(2 * index, ()):
            if not hit.negated:
                evidence.append(" ".join(hit.phrase))
                if field not in fields:
                    fields.append(field)
    for pattern in rule.compiled_regex:
        for field in matcher.fields:
            found = pattern.search(getattr(message, field))
            if found:
                evidence.append(found.group(0))
                if field not in fields:
                    fields.append(field)
    return (fields, evidence) if evidence else None


def fired_rules(
    message: TicketMessage, ruleset: RuleSet, stated: StatedFacts | None = None
) -> list[tuple[Rule, RuleMatch]]:
    """The rules whose conditions all hold, in file order, with what matched; ``stated``:
    the facts the message states (``stated_facts``), computed when not given."""
    stated = stated_facts(message) if stated is None else stated
    index = ruleset.phrase_index
    hits = {
        "subject": index.find(clauses(message.subject)),
        "body": index.find(clauses(message.body)),
    }
    candidates = {owner // 2 for found in hits.values() for owner in found if owner % 2 == 0}
    candidates.update(ruleset.always_checked)
    fired = []
    for position in sorted(candidates):
        rule = ruleset.rules[position]
        matcher = rule.match
        if matcher.channels and message.channel not in matcher.channels:
            continue
        if (
            matcher.suggested_priority
            and message.suggested_priority not in matcher.suggested_priority
        ):
            continue
        text = _text_evidence(rule, position, message, hits)
        if text is None:
            continue
        fields, evidence = text
        if matcher.customer is not None:
            found = _customer_holds(matcher.customer, message.customer, stated)
            if found is None:
                continue
            fields.append("customer")
            evidence.extend(found)
        if matcher.trap is not None:
            found = _trap_holds(matcher.trap, message.trap)
            if found is None:
                continue
            fields.append("trap")
            evidence.extend(found)
        if matcher.channels:
            fields.append("channel")
            evidence.append(f"channel={message.channel.value}")
        if matcher.suggested_priority:
            fields.append("suggested_priority")
            evidence.append(f"suggested {message.suggested_priority}")
        fired.append(
            (rule, RuleMatch(rule_id=rule.id, field="+".join(fields), matched=tuple(evidence)))
        )
    return fired


def _raised(priority: Priority, levels: int) -> Priority:
    return _BY_SEVERITY[min(len(_BY_SEVERITY) - 1, priority.severity + levels)]


def _union(groups: list[tuple[_T, ...]]) -> tuple[_T, ...]:
    seen: list[_T] = []
    for group in groups:
        seen.extend(item for item in group if item not in seen)
    return tuple(seen)


def _suggestion_verdict(suggested: Priority, decided: Priority, by_rules: Priority | None) -> str:
    """How the rules treated an agent's or a device's own priority."""
    if decided is not suggested:
        return f"suggested priority {suggested} overridden: the rules decided {decided}"
    if by_rules is suggested:
        return f"suggested priority {suggested} confirmed by the rules"
    alone = f"the rules alone say {by_rules}" if by_rules else "no rule sets a priority"
    return f"suggested priority {suggested} kept: {alone}, and a suggestion is never lowered"


def _stated_reasons(stated: StatedFacts, customer: CustomerProfile | None) -> list[str]:
    """What the message states, and whether the directory's own knowledge wins."""
    if not stated:
        return []
    reasons = ["stated in the message: " + ", ".join(stated.describe())]
    if stated.version and customer and customer.version:
        reasons.append(f"the directory's version {customer.version} wins over the stated one")
    return reasons


def classify(message: TicketMessage, ruleset: RuleSet) -> Classification:
    stated = stated_facts(message)
    fired = fired_rules(message, ruleset, stated)
    rules = [rule for rule, _ in fired]
    explanation: list[str] = _stated_reasons(stated, message.customer)

    candidates = [
        (
            rule.set.priority,
            f"rule {rule.id}" + (f" ({rule.domain_rule})" if rule.domain_rule else ""),
        )
        for rule in rules
        if rule.set.priority
    ]
    assessment = _assessed(message, ruleset)
    from_matrix = None
    if assessment is not None and not _is_catch_all(assessment, ruleset):
        from_matrix = f"the impact matrix, row {assessment.row.id}"
        candidates.append((assessment.row.priority, from_matrix))
    if message.suggested_priority is not None:
        candidates.append((message.suggested_priority, "the suggested priority"))
    priority: Priority
    if candidates:
        priority, why = max(candidates, key=lambda pair: pair[0].severity)
        if assessment is not None and why == from_matrix:
            explanation.append(describe(assessment))
        else:
            explanation.append(f"priority {priority} from {why}: the most severe candidate")
    elif assessment is not None:
        priority = assessment.row.priority
        explanation.append(describe(assessment))
    else:
        priority = ruleset.defaults.priority
        explanation.append(f"priority {priority}: no rule set one, the default")
    by_default = not candidates
    firm_row = assessment.row if assessment is not None and not by_default else None
    if firm_row is not None and not firm_row.firm:
        firm_row = None
    priority, by_default = _assisted_priority(
        message, ruleset, priority, by_default, firm_row, assessment, explanation
    )
    for rule in rules:
        if rule.set.raise_priority:
            by_default = False
            raised = _raised(priority, rule.set.raise_priority)
            explanation.append(f"raised {priority} -> {raised} by rule {rule.id}")
            priority = raised

    if message.suggested_priority is not None:
        by_rules = max((p for p, _ in candidates[:-1]), key=lambda p: p.severity, default=None)
        explanation.append(_suggestion_verdict(message.suggested_priority, priority, by_rules))

    category_rule = next((rule for rule in rules if rule.set.category), None)
    if category_rule is not None and category_rule.set.category is not None:
        category = category_rule.set.category
        explanation.append(f"category {category} from rule {category_rule.id}: first in file order")
    else:
        category = ruleset.defaults.category
        explanation.append(f"category {category}: no rule set one, the default")
    proposed = _proposal(message, ruleset, "category")
    if proposed is not None and proposed.value != category:
        explanation.append(f"{proposed.describe()}; the rules said {category}")
        category = proposed.value

    skills = _union([rule.set.skills for rule in rules])
    asked = ruleset.category_skills.get(category, ())
    if asked:
        skills = _union([skills, asked])
        explanation.append(f"skills {', '.join(asked)}: what category {category} asks for")
    special: tuple[SpecialRoute, ...] = _union([rule.set.special_routes for rule in rules])
    tags = _union([rule.set.tags for rule in rules])
    route_tags = ruleset.assistant.route_tags if ruleset.assistant is not None else {}
    for route in _route_proposals(message, ruleset):
        if SpecialRoute(route.value) not in special:
            explanation.append(route.describe())
            special = (*special, SpecialRoute(route.value))
            tags = _union([tags, route_tags.get(route.value, ())])
    return Classification(
        priority=priority,
        priority_by_default=by_default,
        category=category,
        tags=tags,
        skills=skills,
        special_routes=special,
        matches=tuple(match for _, match in fired),
        explanation=tuple(explanation),
        ruleset_version=ruleset.fingerprint,
        impact=assessment.facts if assessment is not None else (),
        impact_row=assessment.row.id if assessment is not None else None,
    )


def _assisted_priority(
    message: TicketMessage,
    ruleset: RuleSet,
    priority: Priority,
    by_default: bool,
    firm_row: MatrixRow | None,
    assessment: Assessment | None,
    explanation: list[str],
) -> tuple[Priority, bool]:
    """The priority once the assistant's proposal is weighed, as the rule set's
    ``assistant`` section says: a likely enough P1 first (a missed outage costs most), then
    a confident proposal where the policy lets it replace the rules' priority; never over
    a firm row. Every proposal weighed is explained, taken or not; when the proposal read
    the impact facts too, the inputs that moved it most are named after it."""
    settings = ruleset.assistant
    if settings is None or not _asks(settings, message) or settings.priority_min_confidence is None:
        return priority, by_default
    model = shipped_model("priority")
    words = len(text_of(message).split())
    probabilities = model.probabilities(message)
    combined = None
    if settings.priority_reads_facts:
        combiner = shipped_combiner(MODELS)
        facts = assessment.facts if assessment is not None else ()
        row = assessment.row.id if assessment is not None else None
        reading = combiner.read(
            priority_inputs(probabilities, facts, row, priority, message, words)
        )
        probabilities = combiner.probabilities(reading)
        combined = (combiner, reading)
    proposed = _priority_proposal(settings, probabilities, model.version)
    if proposed is None:
        return priority, by_default
    decided = _weighed(
        message, settings, proposed, priority, by_default, firm_row, words, explanation
    )
    if combined is not None:
        moved = describe_strongest(combined[0].strongest(combined[1], proposed.value))
        explanation.append(f"the assistant read for {proposed.value}: {moved}")
    return decided


def _priority_proposal(
    settings: Assistant, probabilities: dict[str, float], version: str
) -> Proposal | None:
    """A likely enough P1 first (a missed outage costs most), else the likeliest priority
    when it is confident enough; none otherwise."""
    p1 = probabilities.get(Priority.P1.value, 0.0)
    if settings.p1_min_confidence is not None and p1 >= settings.p1_min_confidence:
        return Proposal("priority", Priority.P1.value, p1, version)
    best = max(probabilities, key=probabilities.__getitem__)
    threshold = settings.priority_min_confidence
    if threshold is not None and probabilities[best] >= threshold:
        return Proposal("priority", best, probabilities[best], version)
    return None


def _weighed(
    message: TicketMessage,
    settings: Assistant,
    proposed: Proposal,
    priority: Priority,
    by_default: bool,
    firm_row: MatrixRow | None,
    words: int,
    explanation: list[str],
) -> tuple[Priority, bool]:
    """Whether the proposal replaces the rules' priority: never over a firm row (unless it
    is sure enough), never lowering a short message's or below a suggestion, and only as
    far as ``priority_may`` lets it."""
    wanted = Priority(proposed.value)
    if wanted is priority:
        explanation.append(f"{proposed.describe()}: the same")
        return priority, by_default
    if firm_row is not None and not (
        settings.firm_min_confidence is not None
        and proposed.confidence >= settings.firm_min_confidence
    ):
        explanation.append(f"{proposed.describe()}, not taken: row {firm_row.id} is firm")
        return priority, by_default
    if wanted.severity < priority.severity and not by_default:
        floor = message.suggested_priority
        if floor is not None and wanted.severity < floor.severity:
            explanation.append(f"{proposed.describe()}, not taken: the suggested {floor} stands")
            return priority, by_default
        if words < settings.lower_min_words:
            explanation.append(
                f"{proposed.describe()}, not taken: it lowers a priority only on a message "
                f"of {settings.lower_min_words} words or more"
            )
            return priority, by_default
    if by_default or wanted is Priority.P1 or _may_take(settings.priority_may, wanted, priority):
        explanation.append(f"{proposed.describe()}; the rules alone said {priority}")
        return wanted, False
    explanation.append(
        f"{proposed.describe()}, not taken: it may {settings.priority_may.replace('_', ' ')}, "
        "or decide where no rule stated a priority"
    )
    return priority, by_default


def _asks(settings: Assistant, message: TicketMessage) -> bool:
    """Whether the assistant reads the message: one of its channels, and not a parsed trap
    (the SNMP receiver's facts are the trap rules' to read; a trap told in words, as a
    monitoring system's notification tells it, is text like any other)."""
    return message.channel in settings.channels and message.trap is None


def _may_take(policy: str, proposed: Priority, decided: Priority) -> bool:
    """Whether a confident proposal replaces a priority the rules stated."""
    if policy == "decide":
        return True
    if policy == "raise":
        return proposed.severity > decided.severity
    return proposed is Priority.P1


def _proposal(message: TicketMessage, ruleset: RuleSet, field: str) -> Proposal | None:
    """The assistant's proposal for ``field`` when the rule set asks for one and it is
    confident enough; parsed traps are left to the rules."""
    settings = ruleset.assistant
    if settings is None or not _asks(settings, message):
        return None
    threshold = getattr(settings, f"{field}_min_confidence")
    if threshold is None:
        return None
    proposal = shipped_model(field).propose(message)
    return proposal if proposal.confidence >= threshold else None


def _route_proposals(message: TicketMessage, ruleset: RuleSet) -> list[Proposal]:
    """The special routes the assistant proposes, each confident enough on its own."""
    settings = ruleset.assistant
    if settings is None or not _asks(settings, message):
        return []
    threshold = settings.routes_min_confidence
    if threshold is None:
        return []
    proposals = shipped_model("routes").propose_each(message)
    return [proposal for proposal in proposals if proposal.confidence >= threshold]


def _assessed(message: TicketMessage, ruleset: RuleSet) -> Assessment | None:
    if ruleset.impact is None:
        return None
    facts = stated_impact(message, ruleset.impact, ruleset.impact_index, ruleset.impact_values)
    return assess(facts, ruleset.impact)


def _is_catch_all(assessment: Assessment, ruleset: RuleSet) -> bool:
    """The matrix's last row holds always: it decides only when nothing else does, and a
    follow-up it decides keeps the ticket's priority (``priority_by_default``)."""
    return ruleset.impact is not None and assessment.row is ruleset.impact.matrix[-1]
