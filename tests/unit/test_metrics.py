"""One metrics module: every metric is constructed in engine/metrics.py, and every label
of every metric takes the members of one enum (bounded values, never a ticket id)."""

from __future__ import annotations

import ast
from enum import Enum
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from engine import metrics
from engine.contract import Priority
from engine.ingest.snmp.pysnmp_adapter import ENGINE_COUNTERS
from engine.notify.notices import Notice
from engine.sla.obligations import obligation_name
from tests.unit.api.api_support import Api, with_api

ENGINE = Path(metrics.__file__).parent
METRICS_MODULE = Path(metrics.__file__)
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def engine_modules() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(ENGINE.rglob("*.py"))
    ]


def metric_constructions(tree: ast.Module) -> list[int]:
    """Lines that construct a prometheus_client metric, however it was imported."""
    classes: set[str] = set()  # names bound to prometheus_client's metric classes
    modules: set[str] = set()  # names bound to prometheus_client itself
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
            classes |= {alias.asname or alias.name for alias in node.names
                        if alias.name in METRIC_TYPES}  # fmt: skip
        elif isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names
                        if alias.name.startswith("prometheus_client")}  # fmt: skip

    def constructs(func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in classes
        return (
            isinstance(func, ast.Attribute)
            and func.attr in METRIC_TYPES
            and ast.unparse(func.value).split(".")[0] in modules
        )

    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and constructs(node.func)]  # fmt: skip


def declared_metrics() -> dict[str, MetricWrapperBase]:
    return {
        name: value for name, value in vars(metrics).items() if isinstance(value, MetricWrapperBase)
    }


def test_the_scan_sees_the_metrics_of_engine_metrics() -> None:
    found = metric_constructions(ast.parse(METRICS_MODULE.read_text(encoding="utf-8")))
    assert len(found) == len(declared_metrics())


def test_no_metric_is_constructed_outside_engine_metrics() -> None:
    outside = [
        f"{path.relative_to(ENGINE.parent)}:{line}"
        for path, tree in engine_modules()
        if path != METRICS_MODULE
        for line in metric_constructions(tree)
    ]
    assert outside == [], "declare these metrics in engine/metrics.py"


def test_every_label_of_every_metric_is_bound_to_an_enum() -> None:
    for name, metric in declared_metrics().items():
        labels = metrics.LABELS.get(metric, {})
        assert tuple(labels) == metric._labelnames, f"{name}: LABELS names other labels"
        for label, enum in labels.items():
            assert issubclass(enum, Enum), f"{name}.{label}"
            for member in enum:  # exposed as its value, never as "Class.MEMBER"
                assert str(member) == str(member.value), f"{name}.{label}: {member!r}"
    assert set(metrics.LABELS) <= set(declared_metrics().values())


def test_no_label_value_is_written_as_a_string_in_the_code() -> None:
    """``.labels("rejected")`` would bypass the enums: pass their members."""
    literal = [
        f"{path.relative_to(ENGINE.parent)}:{node.lineno}"
        for path, tree in engine_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "labels"
        and any(isinstance(arg, ast.Constant | ast.JoinedStr) for arg in node.args)
    ]
    assert literal == []


def test_the_label_enums_cover_what_the_engine_produces() -> None:
    assert {obligation_name(priority) for priority in Priority} == set(metrics.SlaObligation)
    assert Notice.kind in set(metrics.NoticeKind)
    assert set(ENGINE_COUNTERS) <= set(metrics.IngestReason)
    for reason in metrics.HoldReason:
        assert metrics.IngestReason(reason)
    for dropped in (metrics.SpoolDropReason.FULL, metrics.SpoolDropReason.WRITE_ERROR):
        assert metrics.IngestReason(f"spool_{dropped}")


def test_every_api_route_has_its_label() -> None:
    templates: set[str] = set()

    async def check(api: Api) -> None:
        templates.update(resource.canonical for resource in api.client.app.router.resources())

    with_api(check)
    assert templates | {metrics.ApiRoute.UNMATCHED} == set(metrics.ApiRoute)
