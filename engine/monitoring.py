"""``engine up --monitoring``: a local Prometheus beside the engine, with the shipped
configuration (``deploy/monitoring/``) pointed at the ports this engine's components use.

``prometheus_config`` is pure: the shipped configuration, its jobs' targets set to the
configured metrics ports, jobs of components that do not run left out (their absence would
fire the component-down alert), rule files named by absolute path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from engine.errors import EngineError
from engine.settings import Settings

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "monitoring" / "prometheus.yml"


def metrics_ports(settings: Settings, components: set[str]) -> dict[str, int]:
    """Each component's /metrics port (``ENGINE_<COMPONENT>_METRICS_PORT``), by its name in
    ``engine up`` and in the shipped configuration's jobs."""
    return {
        name: getattr(settings, f"{name.replace('-', '_')}_metrics_port") for name in components
    }


def prometheus_config(
    shipped: dict[str, Any],
    shipped_dir: Path,
    ports: dict[str, int],
    host: str,
    running: set[str],
    scrape_seconds: float,
) -> dict[str, Any]:
    config = dict(shipped)
    interval = f"{scrape_seconds:g}s"
    config["global"] = {
        **shipped.get("global", {}),
        "scrape_interval": interval,
        "evaluation_interval": interval,
        "scrape_timeout": f"{min(scrape_seconds, 10):g}s",
    }
    config["rule_files"] = [str(shipped_dir / rules) for rules in shipped.get("rule_files", [])]
    jobs = []
    for job in shipped.get("scrape_configs", []):
        name = job["job_name"]
        if name not in running:
            continue
        labels = {
            k: v for c in job.get("static_configs", []) for k, v in c.get("labels", {}).items()
        }
        targets = [f"{host}:{ports[name]}"]
        jobs.append({**job, "static_configs": [{"targets": targets, "labels": labels}]})
    config["scrape_configs"] = jobs
    return config


def write_config(settings: Settings, running: set[str]) -> Path:
    """The configuration for this engine, written under the state dir; its path."""
    try:
        shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    except OSError as error:
        raise EngineError(
            f"engine up --monitoring needs the project's {SHIPPED}: {error}"
        ) from error
    config = prometheus_config(
        shipped, SHIPPED.parent, metrics_ports(settings, running), settings.metrics_host, running,
        settings.prometheus_scrape_seconds,
    )  # fmt: skip
    folder = settings.state_dir / "monitoring"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def prometheus_command(settings: Settings, config: Path) -> list[str]:
    folder = settings.state_dir / "monitoring"
    return [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={settings.metrics_host}:{settings.prometheus_port}",
        "--log.level=warn",
    ]
