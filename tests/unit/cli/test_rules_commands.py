"""``engine classify``, ``engine rules check`` and ``engine rules test`` as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from engine.rules.ruleset import DEFAULT_RULES

ROOT = Path(__file__).resolve().parents[3]


def engine(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def test_classify_reads_json_lines_and_writes_one_decision_each() -> None:
    lines = "\n".join(
        json.dumps(item)
        for item in [
            {"channel": "email", "subject": "Urgente", "body": "la central está caída",
             "sender": "ops@acme.example"},
            {"channel": "chat", "body": "how do I add an extension?"},
            {"channel": "pigeon", "body": "?"},
        ]
    )  # fmt: skip

    result = engine(
        "classify", "--customers", str(ROOT / "deploy" / "customers.example.yaml"), stdin=lines
    )

    outage, howto, bad = (json.loads(line) for line in result.stdout.splitlines())
    assert result.returncode == 1  # one line was refused
    assert (outage["priority"], outage["tier"]) == ("P1", "L3")
    assert {"version-limited", "eol-callcenter"} <= set(outage["tags"])  # from the directory
    reasons = outage["explanation"]["reasons"]
    assert any(r.startswith("priority P1 from the impact matrix, row outage (P1)") for r in reasons)
    facts = {fact["fact"]: fact for fact in outage["explanation"]["impact"]}
    assert facts["state"]["value"] == "down" and "caida" in facts["state"]["evidence"]
    assert (howto["priority"], howto["category"]) == ("P4", "adding_extensions")
    assert bad == {"line": 3, "error": bad["error"]}
    assert bad["error"].startswith("channel: Input should be")


def test_rules_check_accepts_the_shipped_rules_and_names_bad_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'version: "x"\ndefaults: {priority: P3, category: other}\nrules: []\n'
        "routes:\n  id: root\n  tier: L1\n  routes:\n    - {id: a, tier: L9}\n",
        encoding="utf-8",
    )

    good = engine("rules", "check", str(DEFAULT_RULES))
    refused = engine("rules", "check", str(DEFAULT_RULES), str(bad))

    assert good.returncode == 0 and good.stdout.startswith("ok ")
    assert refused.returncode == 1
    assert f"{bad}:8: routes.routes[0].tier" in refused.stdout


def test_rules_test_reports_failures_with_their_explanation(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: outage\n"
        "    input: {channel: email, subject: Caída, body: la central está caída}\n"
        "    expect: {priority: P1, tier: L3}\n"
        "  - name: wrong-on-purpose\n"
        "    input: {channel: chat, body: 'how do I add an extension?'}\n"
        "    expect: {priority: P2, category: adding_extensions}\n",
        encoding="utf-8",
    )

    result = engine("rules", "test", str(cases))

    assert result.returncode == 1
    assert "FAIL wrong-on-purpose" in result.stdout
    assert "priority: expected P2, got P4" in result.stdout
    assert "fired category-adding-extensions on body: add an extension" in result.stdout
    assert "- priority P4 from the impact matrix, row information-or-change (P4)" in result.stdout
    assert "1/2 cases pass" in result.stdout


def test_rules_test_report_measures_a_labelled_file_like_a_classifier() -> None:
    labelled = str(ROOT / "tests" / "rules" / "labelled.yaml")

    text = engine("rules", "test", "--report", labelled)
    data = engine("rules", "test", "--report", labelled, "--json")

    assert text.returncode == 0, text.stderr
    for line in ("P1 recall", "P1 precision", "special routes  recall", "  priority  "):
        assert line in text.stdout
    assert re.search(r"categories: macro F1 \d\.\d{3} over 22", text.stdout)
    assert "priority confusion (rows expected, columns got)" in text.stdout
    assert "tier confusion (rows expected, columns got)" in text.stdout
    assert "language es:" in text.stdout and "language en:" in text.stdout
    figures = json.loads(data.stdout)
    assert figures["cases"] == figures["accuracy"]["priority"]["total"] == 191
    assert sum(figures["confusion"]["priority"]["P1"].values()) == figures["p1"]["recall"]["total"]
    assert {figures["by_language"][lang]["cases"] for lang in ("es", "en")} == {93, 98}
