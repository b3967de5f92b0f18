"""deploy/monitoring/ checked by the programs that will read it: promtool (Prometheus 2.42)
and amtool (Alertmanager 0.25), Debian's, installed by deploy/bootstrap.sh. A missing tool
fails the test, never skips it: unchecked rules must not pass for checked ones."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTMANAGER = MONITORING / "alertmanager.yml"


def run(tool: str, *arguments: str | Path) -> None:
    """Run ``tool`` from the repository root; fail with its output unless it exits 0."""
    program = shutil.which(tool)
    if program is None:
        pytest.fail(
            f"{tool} is not installed: run deploy/bootstrap.sh (`make bootstrap`) as root, "
            "which installs Debian's prometheus and prometheus-alertmanager",
            pytrace=False,
        )
    # The timeout only keeps a hung tool from hanging the suite.
    result = subprocess.run(
        [program, *map(str, arguments)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    command = " ".join([tool, *map(str, arguments)])
    assert result.returncode == 0, (
        f"`{command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )


def relative(paths: list[Path]) -> list[str]:
    assert paths, "no file found: the monitoring folder moved?"
    return [str(path.relative_to(ROOT)) for path in sorted(paths)]


def test_promtool_accepts_the_prometheus_configuration() -> None:
    run("promtool", "check", "config", "deploy/monitoring/prometheus.yml")


def test_promtool_accepts_the_rule_files() -> None:
    run("promtool", "check", "rules", *relative(list((MONITORING / "rules").glob("*.yml"))))


def test_the_promtool_unit_tests_of_the_rules_pass() -> None:
    run("promtool", "test", "rules", *relative(list((MONITORING / "tests").glob("*.yml"))))


def test_amtool_accepts_the_alertmanager_configuration() -> None:
    run("amtool", "check-config", "deploy/monitoring/alertmanager.yml")


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("alertname=P1WaitingUnassigned severity=page tier=L3 priority=P1", "l3-on-call"),
        ("alertname=P1WaitingUnassigned severity=page tier=L1 priority=P1", "l1-on-call"),
        ("alertname=P1UpdateBreached severity=page priority=P1", "desk-duty-manager"),
        ("alertname=ComponentDown severity=page component=processor", "engine-on-call"),
        ("alertname=TrapSpoolDropping severity=page reason=full", "engine-on-call"),
        ("alertname=UpdatesAtRisk severity=ticket priority=P2", "desk-leads-mail"),
        ("alertname=UpdateBreached severity=ticket priority=P3", "desk-leads-mail"),
        ("alertname=DeadLettersRising severity=ticket origin=processor", "engine-operators-mail"),
        ("alertname=ConsumerLagGrowing severity=ticket group=g topic=t", "engine-operators-mail"),
        ("alertname=UpdatesAtRisk severity=info priority=P4", "desk-chat"),
        ("alertname=TrapStorm severity=info", "desk-chat"),
    ],
)
def test_alertmanager_routes_by_severity_and_tier(labels: str, receiver: str) -> None:
    run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER.relative_to(ROOT)}",
        f"--verify.receivers={receiver}",
        *labels.split(),
    )
