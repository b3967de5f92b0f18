"""The Grafana dashboards are generated from code: the committed JSON is what the code
makes, and every panel's query is valid PromQL (promtool parses it as a recording rule)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).parents[3]
GENERATOR = ROOT / "deploy" / "monitoring" / "grafana" / "generate.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def promql(expr: str) -> str:
    """A panel's query as Prometheus reads it: Grafana's rate interval made concrete."""
    return expr.replace("$__rate_interval", "5m")


def test_the_committed_dashboards_are_what_the_code_generates() -> None:
    for name, text in generator().rendered().items():
        committed = (GENERATOR.parent / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} drifted: run python {GENERATOR.relative_to(ROOT)}"


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run make bootstrap (Debian's prometheus)"
    queries = generator().every_query()
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query{n}", "expr": promql(query.expr)}
                    for n, query in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(queries)} rules found" in checked.stdout
