"""The shipped monitoring agrees with the engine: every scraped component is one `engine up`
runs, on its default port; every metric and label a rule reads is one the engine exports;
every alert is labelled, explained in docs/runbook.md and covered by a promtool test that
shows it firing and staying quiet."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from engine import metrics
from engine.settings import Settings
from engine.supervisor import AGENTS_COMPONENTS, COMPONENTS, RELAY_COMPONENTS

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
RUNBOOK = ROOT / "docs" / "runbook.md"
MONITORING_PAGE = ROOT / "docs" / "monitoring.md"
SEVERITIES = {"page", "ticket", "info"}
TARGET_LABELS = {"job", "instance", "component"}

# Series named otherwise than their declaration: prometheus_client's Info "ticketing_build"
# is exposed as ticketing_build_info (a gauge of 1).
NEW_METRICS: dict[str, tuple[str, dict[str, set[str] | None]]] = {
    "ticketing_build_info": ("gauge", {"version": None, "ruleset": None}),
}


def exposed(kind: str, name: str) -> list[str]:
    """The series names a prometheus_client metric of this kind and name exposes."""
    if kind == "counter":
        return [f"{name}_total"]
    if kind == "histogram":
        return [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
    return [name]


def known_series() -> dict[str, dict[str, set[str] | None]]:
    """Every series name the engine exports, with the values each of its labels takes."""
    known: dict[str, dict[str, set[str] | None]] = {"up": {}}
    for metric in vars(metrics).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        enums: dict[str, type[Enum]] = metrics.LABELS.get(metric, {})
        labels: dict[str, set[str] | None] = {
            label: {str(member.value) for member in enums[label]} if label in enums else None
            for label in metric._labelnames
        }
        for series in exposed(str(metric._type), metric._name):
            known[series] = labels | ({"le": None} if series.endswith("_bucket") else {})
    for name, (kind, labels) in NEW_METRICS.items():
        for series in exposed(kind, name):
            known.setdefault(series, labels | ({"le": None} if series.endswith("_bucket") else {}))
    return known


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted((MONITORING / "rules").glob("*.yml"))
        for group in load(path)["groups"]
        for rule in group["rules"]
    ]


ALERTS = [rule for rule in rules() if "alert" in rule]
ALERT_IDS = [f"{rule['alert']}/{rule['labels'].get('severity')}" for rule in ALERTS]
RECORDED = {rule["record"] for rule in rules() if "record" in rule}


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings (as tests/unit/test_readme.py reads them)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_there_are_alerts_and_recording_rules() -> None:
    assert len(ALERTS) >= 8
    assert RECORDED


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_every_alert_is_labelled_and_explained(rule: dict[str, Any]) -> None:
    assert rule["labels"].get("severity") in SEVERITIES
    annotations = rule["annotations"]
    assert annotations.get("summary")
    assert annotations.get("description")
    url = annotations.get("runbook_url", "")
    page, _, anchor = url.partition("#")
    assert page.endswith("/docs/runbook.md"), url
    assert anchor == rule["alert"].lower(), url
    assert anchor in anchors(RUNBOOK.read_text(encoding="utf-8")), f"no section for {url}"


def test_every_alert_is_in_the_monitoring_page_table() -> None:
    page = MONITORING_PAGE.read_text(encoding="utf-8")
    missing = {rule["alert"] for rule in ALERTS if f"| [`{rule['alert']}`]" not in page}
    assert missing == set()


def selectors(text: str) -> list[tuple[str, str]]:
    """(series name, label matchers) of every selector naming an engine series or `up`;
    a recorded name (level:metric:operations) is not one."""
    name = r"(?<![\w:])(ticketing_[a-z0-9_]+|up)(?![\w:(])"
    return re.findall(name + r"(?:\{([^}]*)\})?", text)


def matchers(body: str) -> list[tuple[str, str, str]]:
    return re.findall(r"(\w+)\s*(=~|!~|!=|=)\s*[\"']([^\"']*)[\"']", body)


def expressions() -> list[tuple[str, str]]:
    found = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()]
    found += [
        (f"{rule['alert']} {key}", text)
        for rule in ALERTS
        for key, text in rule["annotations"].items()
        if "query" in text
    ]
    return found


@pytest.mark.parametrize(("where", "expr"), expressions(), ids=[w for w, _ in expressions()])
def test_every_series_and_label_a_rule_reads_is_exported(where: str, expr: str) -> None:
    known = known_series()
    for series, body in selectors(expr):
        assert series in known, f"{where}: {series} is not a metric of the engine"
        for label, operator, value in matchers(body):
            allowed = known[series]
            assert label in allowed or label in TARGET_LABELS, f"{where}: {series} has no {label}"
            values = allowed.get(label)
            if values is None or not re.fullmatch(r"[\w.-]+(\|[\w.-]+)*", value):
                continue
            for alternative in value.split("|") if "~" in operator else [value]:
                assert alternative in values, f"{where}: {series}{{{label}}} is never {value!r}"
    for name in re.findall(r"(?<![\w:])(\w*:[\w:]+)", re.sub(r"\"[^\"]*\"", "", expr)):
        assert name in RECORDED, f"{where}: {name} is recorded by no rule"


def test_the_series_check_sees_what_it_checks() -> None:
    assert selectors('sum by (tier) (rate(ticketing_x_total{tier="L1"}[5m])) and up == 0') == [
        ("ticketing_x_total", 'tier="L1"'),
        ("up", ""),
    ]
    assert selectors("tier:ticketing_oldest_waiting_seconds:max > 0") == []
    assert matchers("priority=~\"P1|P2\", tier='L3'") == [
        ("priority", "=~", "P1|P2"),
        ("tier", "=", "L3"),
    ]


def promtool_cases() -> list[dict[str, Any]]:
    return [
        case
        for path in sorted((MONITORING / "tests").glob("*.yml"))
        for test in load(path)["tests"]
        for case in test.get("alert_rule_test", [])
    ]


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_every_alert_has_a_promtool_test_that_fires_it_and_one_that_does_not(
    rule: dict[str, Any],
) -> None:
    cases = [case for case in promtool_cases() if case["alertname"] == rule["alert"]]
    fired = [
        alert
        for case in cases
        for alert in case.get("exp_alerts") or []
        if alert["exp_labels"].get("severity") == rule["labels"]["severity"]
    ]
    assert fired, f"no promtool test expects {rule['alert']} with this severity"
    assert any(not case.get("exp_alerts") for case in cases), (
        f"no promtool test expects {rule['alert']} to stay quiet"
    )


def scrape_jobs() -> dict[str, tuple[str, list[str]]]:
    """component label -> (job name, targets)."""
    jobs: dict[str, tuple[str, list[str]]] = {}
    for job in load(MONITORING / "prometheus.yml")["scrape_configs"]:
        for static in job["static_configs"]:
            jobs[static["labels"]["component"]] = (job["job_name"], static["targets"])
    return jobs


def test_every_component_engine_up_runs_is_scraped_on_its_default_port() -> None:
    components = (*COMPONENTS, *RELAY_COMPONENTS, *AGENTS_COMPONENTS)
    jobs = scrape_jobs()
    assert sorted(jobs) == sorted(components)
    for component in components:
        port = Settings.model_fields[f"{component.replace('-', '_')}_metrics_port"].default
        assert jobs[component] == (component, [f"127.0.0.1:{port}"])


def test_the_rule_files_prometheus_loads_are_the_shipped_ones() -> None:
    named = load(MONITORING / "prometheus.yml")["rule_files"]
    assert sorted(named) == sorted(
        str(path.relative_to(MONITORING)) for path in (MONITORING / "rules").glob("*.yml")
    )
