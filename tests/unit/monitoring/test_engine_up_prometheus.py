"""engine up --monitoring: the shipped configuration pointed at this engine's ports, without
the jobs of components that do not run."""

from __future__ import annotations

import yaml

from engine.monitoring import SHIPPED, metrics_ports, prometheus_config
from engine.settings import Settings
from engine.supervisor import COMPONENTS


def test_the_configuration_scrapes_what_runs_on_its_ports() -> None:
    settings = Settings(api_metrics_port=19468, smtp_metrics_port=19464)
    running = set(COMPONENTS)  # no notifier, no tier workers
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    config = prometheus_config(
        shipped, SHIPPED.parent, metrics_ports(settings, running), "127.0.0.1", running, 1.0
    )
    jobs = {job["job_name"]: job["static_configs"][0] for job in config["scrape_configs"]}
    assert set(jobs) == running
    assert jobs["api"] == {"targets": ["127.0.0.1:19468"], "labels": {"component": "api"}}
    assert jobs["smtp"]["targets"] == ["127.0.0.1:19464"]
    assert all(SHIPPED.parent.as_posix() in rules for rules in config["rule_files"])
    assert config["global"]["scrape_interval"] == "1s"
