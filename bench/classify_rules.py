"""Decisions per second of the rules (classify + route), with the shipped rule set and with
the shipped set plus 2,000 generated rules, over the same messages, in one run.

Target (issue 3): the 2,000-rule set keeps at least half the shipped set's rate, because
phrases are found through one index (engine/rules/text.py), not one scan per rule.

    python -m bench.classify_rules [--rules 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import yaml

from engine.contract import Channel, TicketMessage
from engine.rules.decide import decide
from engine.rules.ruleset import DEFAULT_RULES, RuleSet, load_ruleset, parse_ruleset

LABELLED = Path(__file__).resolve().parents[1] / "tests" / "rules" / "labelled.yaml"
SYLLABLES = ["ka", "lo", "mi", "su", "te", "ra", "ne", "po", "di", "va", "zu", "fe", "go", "xi"]


def messages() -> list[TicketMessage]:
    cases = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))["cases"]
    return [
        TicketMessage(
            channel=Channel(case["input"]["channel"]),
            subject=case["input"].get("subject", ""),
            body=case["input"].get("body", ""),
            sender=case["input"].get("sender", ""),
        )
        for case in cases
    ]


def generated(count: int, seed: int = 7) -> RuleSet:
    """The shipped rules plus ``count`` rules of 3 made-up phrases each (they never fire on
    real text, so the decisions stay the shipped ones: only the cost is measured)."""
    rng = random.Random(seed)
    document = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))

    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4)))

    extra = [
        {
            "id": f"generated-{n}",
            "match": {
                "phrases": [" ".join(word() for _ in range(rng.randint(1, 3))) for _ in range(3)]
            },
            "set": {"category": f"generated_{n % 50}", "tags": [f"g{n % 20}"]},
        }
        for n in range(count)
    ]
    document["rules"] = document["rules"] + extra
    return parse_ruleset(yaml.safe_dump(document, allow_unicode=True), f"generated-{count}")


def rate(ruleset: RuleSet, inputs: list[TicketMessage], rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for message in inputs:
            decide(message, ruleset)
        best = max(best, len(inputs) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    inputs = messages() * 5
    shipped = load_ruleset()
    large = generated(args.rules)
    for ruleset in (shipped, large):  # warm the caches (index, compiled patterns)
        decide(inputs[0], ruleset)
    shipped_rate = rate(shipped, inputs, args.rounds)
    large_rate = rate(large, inputs, args.rounds)
    print(f"messages: {len(inputs)} ({len(inputs) // 5} labelled, 5 times), best of {args.rounds}")
    print(f"shipped rule set ({len(shipped.rules):5} rules): {shipped_rate:9.0f} decisions/s")
    print(f"generated set    ({len(large.rules):5} rules): {large_rate:9.0f} decisions/s")
    print(f"ratio generated/shipped: {large_rate / shipped_rate:.3f} (target >= 0.5)")


if __name__ == "__main__":
    main()
