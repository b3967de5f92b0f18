"""deploy/k8s/ for the tests: its two scripts loaded as modules, and ways to pick resources
out of a rendered overlay."""

from __future__ import annotations

import base64
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("development", "production")
Resource = dict[str, Any]


def load(name: str) -> ModuleType:
    """deploy/k8s/<name>.py as a module (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"deploy_k8s_{name}", K8S / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def of_kind(resources: list[Resource], *kinds: str) -> dict[str, Resource]:
    """The resources of these kinds, by name."""
    return {r["metadata"]["name"]: r for r in resources if r["kind"] in kinds}


def workloads(resources: list[Resource]) -> dict[str, Resource]:
    return of_kind(resources, "Deployment", "StatefulSet")


def pod(workload: Resource) -> Resource:
    return dict(workload["spec"]["template"]["spec"])


def container(workload: Resource) -> Resource:
    (engine,) = pod(workload)["containers"]
    return dict(engine)


def config(resources: list[Resource]) -> dict[str, str]:
    """The settings a pod gets: the engine-config ConfigMap, then the engine-secret-settings
    Secret where the overlay has one (the pods' envFrom order: the Secret wins). Their
    names carry kustomize's hash."""
    (settings,) = [
        dict(r["data"])
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("engine-config-")
    ]
    for secret in resources:
        if secret["kind"] == "Secret" and secret["metadata"]["name"].startswith(
            "engine-secret-settings-"
        ):
            settings |= {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return settings
