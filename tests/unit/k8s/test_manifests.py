"""The overlays of deploy/k8s/, rendered by kustomize: valid for Kubernetes and for the
operators' CRDs (strictly, offline: deploy/k8s/check.py), and true to the engine: one
workload per component of `engine up`, each running that component's command, on the
ports its settings give, probed on its metrics endpoint, with settings the engine accepts,
and single writers kept single."""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Any

import pytest
from pydantic import ValidationError

from engine.settings import Settings
from engine.supervisor import AGENTS_COMPONENTS, COMPONENTS, RELAY_COMPONENTS
from tests.unit.k8s.manifests import (
    OVERLAYS,
    Resource,
    config,
    container,
    of_kind,
    pod,
    workloads,
)

EVERY_COMPONENT = {*COMPONENTS, *RELAY_COMPONENTS, *AGENTS_COMPONENTS}
# May never run twice (docs/decisions/0013; deploy/k8s/base/snmp.yaml). The entitlements
# ledger may: one writer at a time by a lease (decision 61).
SINGLE = {"snmp"}
# Keep state on a disk that outlives the pod: the SNMP spool, the processor's table copy.
WITH_VOLUME = {"snmp", "processor"}


def default(setting: str) -> Any:
    return Settings.model_fields[setting].default


def metrics_port(component: str) -> int:
    port: int = default(f"{component.replace('-', '_')}_metrics_port")
    return port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_is_valid_kubernetes_and_valid_custom_resources(
    overlay: str, rendered: dict[str, list[Resource]], check: ModuleType
) -> None:
    problems = check.validate(rendered[overlay])
    assert [str(problem) for problem in problems] == []


def _mutations(resources: list[Resource]) -> list[tuple[str, Resource]]:
    def changed(kind: str, change: Any) -> Resource:
        resource = copy.deepcopy(next(r for r in resources if r["kind"] == kind))
        change(resource)
        return resource

    def containers(r: Resource) -> Any:
        return r["spec"]["template"]["spec"]["containers"]

    return [
        ("Deployment", changed("Deployment", lambda r: containers(r)[0].update(readyness={}))),
        ("StatefulSet", changed("StatefulSet", lambda r: r["spec"].update(replica=2))),
        ("Service", changed("Service", lambda r: r["spec"]["ports"][0].update(port="25"))),
        ("KafkaTopic", changed("KafkaTopic", lambda r: r["spec"].update(partition=3))),
        ("KafkaTopic", changed("KafkaTopic", lambda r: r["spec"].update(partitions="six"))),
        ("Kafka", changed("Kafka", lambda r: r["spec"].update(zookeeper={"replicas": 3}))),
        ("Kafka", changed("Kafka", lambda r: r["metadata"].update(label={}))),
        ("KafkaNodePool", changed("KafkaNodePool", lambda r: r["spec"].update(roles=["leader"]))),
        ("ServiceMonitor", changed("ServiceMonitor", lambda r: r["spec"]["endpoints"][0].update(
            intervall="15s"))),
        ("PrometheusRule", changed("PrometheusRule", lambda r: r["spec"]["groups"][0]["rules"][0]
            .pop("expr"))),
        ("a name", changed("Service", lambda r: r["metadata"].update(name="SMTP_in"))),
    ]  # fmt: skip


def test_the_validation_refuses_unknown_fields_wrong_types_and_bad_names(
    rendered: dict[str, list[Resource]], check: ModuleType
) -> None:
    """Every schema is in force: one mistake in each kind is found."""
    for what, resource in _mutations(rendered["production"]):
        assert check.validate([resource]), f"a broken {what} passed"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_component_of_engine_up_runs_as_its_own_workload(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    found = workloads(rendered[overlay])
    assert set(found) == EVERY_COMPONENT
    for name, workload in found.items():
        engine = container(workload)
        # the image's entry point is `engine` (deploy/Containerfile): `engine <component>`
        assert "command" not in engine, f"{name} overrides the image's entry point"
        assert engine["args"] == [name]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_are_the_settings_and_probes_ask_the_metrics_endpoint(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    listening = {
        "smtp": ("smtp", default("smtp_port"), "TCP"),
        "snmp": ("snmp", default("snmp_port"), "UDP"),
        "api": ("http", default("api_port"), "TCP"),
    }
    for name, workload in workloads(rendered[overlay]).items():
        engine = container(workload)
        ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in engine["ports"]}
        expected = {"metrics": (metrics_port(name), "TCP")}
        if name in listening:
            port_name, port, protocol = listening[name]
            expected[port_name] = (port, protocol)
        assert ports == expected, name
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = engine[probe]["httpGet"]
            if (name, probe) == ("api", "readinessProbe"):
                assert (get["path"], get["port"]) == ("/health", "http")
            else:
                assert (get["path"], get["port"]) == ("/metrics", "metrics"), f"{name} {probe}"
        assert engine["resources"]["requests"]["memory"]
        assert engine["resources"]["limits"]["memory"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_configuration_is_settings_the_engine_accepts(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    data = config(rendered[overlay])
    assert all(name.startswith("ENGINE_") for name in data)
    # validated as a whole, as at a pod's start (without this process's environment)
    settings = Settings.model_validate(
        {name.removeprefix("ENGINE_").lower(): value for name, value in data.items()}
    )
    assert settings.bootstrap_servers, "a pod has no local broker to fall back to"
    # every listener on the pod's address, so that Services and probes reach it
    assert {settings.smtp_host, settings.snmp_host, settings.api_host, settings.metrics_host} == {
        "0.0.0.0"
    }
    assert str(settings.state_dir) == "/var/lib/engine"
    # no SNMPv1/v2c community unless a Secret gives one (development's does)
    assert settings.snmp_communities == (["public"] if overlay == "development" else [])
    for name, workload in workloads(rendered[overlay]).items():
        mounts = {m["mountPath"]: m["name"] for m in container(workload)["volumeMounts"]}
        assert mounts.get("/var/lib/engine") == "state", f"{name} has no state volume"
    files = [v for k, v in data.items() if k.endswith("_FILE")]
    assert all(path.startswith("/etc/engine/") for path in files)


def test_a_setting_the_engine_does_not_know_is_refused() -> None:
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings.model_validate({"no_such_setting": "1"})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_single_writers_stay_single_and_spools_keep_their_disk(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    found = workloads(rendered[overlay])
    for name in SINGLE:
        # a StatefulSet never runs two pods of one identity, even while replacing one
        assert found[name]["kind"] == "StatefulSet"
        assert found[name]["spec"]["replicas"] == 1, f"{name} must run once"
    for name in WITH_VOLUME:
        claims = found[name]["spec"]["volumeClaimTemplates"]
        assert [claim["metadata"]["name"] for claim in claims] == ["state"]
        assert "state" not in {v["name"] for v in pod(found[name]).get("volumes", [])}
    retention = found["snmp"]["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_development_runs_one_pod_of_each_and_production_more_where_allowed(
    rendered: dict[str, list[Resource]],
) -> None:
    development = workloads(rendered["development"])
    assert {name: w["spec"]["replicas"] for name, w in development.items()} == dict.fromkeys(
        EVERY_COMPONENT, 1
    )
    production = workloads(rendered["production"])
    partitions = int(config(rendered["production"])["ENGINE_PARTITIONS"])
    for name, workload in production.items():
        replicas = workload["spec"]["replicas"]
        if name in SINGLE:
            assert replicas == 1
        else:
            assert 2 <= replicas <= partitions, name
        resources = container(workload)["resources"]
        assert resources != container(development[name])["resources"], f"{name}: not sized"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_a_disruption_budget_and_a_scraped_metrics_service(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    resources = rendered[overlay]
    budgets = of_kind(resources, "PodDisruptionBudget")
    services = of_kind(resources, "Service")
    (monitor,) = of_kind(resources, "ServiceMonitor").values()
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/component"
    for name, workload in workloads(resources).items():
        labels = workload["spec"]["selector"]["matchLabels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"] == labels
        assert budgets[name]["spec"]["maxUnavailable"] == 1
        metrics = services[f"{name}-metrics"]
        assert metrics["spec"]["selector"] == labels
        assert selected.items() <= metrics["metadata"]["labels"].items()
        assert metrics["metadata"]["labels"]["app.kubernetes.io/component"] == name
        (port,) = metrics["spec"]["ports"]
        assert (port["name"], port["port"], port["targetPort"]) == (
            "metrics",
            metrics_port(name),
            "metrics",
        )
        if workload["kind"] == "StatefulSet":
            assert workload["spec"]["serviceName"] == f"{name}-metrics"
            assert metrics["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_smtp_snmp_and_the_api_have_services_that_keep_the_senders_address(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    services = of_kind(rendered[overlay], "Service")
    expected = {
        "smtp": (25, "smtp", "TCP"),
        "snmp": (162, "snmp", "UDP"),
        "api": (8080, "http", "TCP"),
    }
    for name, port in expected.items():
        (listed,) = services[name]["spec"]["ports"]
        assert (listed["port"], listed["targetPort"], listed["protocol"]) == port
    for name in ("smtp", "snmp"):
        # the rate limit, the recorded peer and the device of a trap need the client's address
        assert services[name]["spec"]["type"] in {"LoadBalancer", "NodePort"}
        assert services[name]["spec"]["externalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_unprivileged_without_service_variables(
    overlay: str, rendered: dict[str, list[Resource]]
) -> None:
    for name, workload in workloads(rendered[overlay]).items():
        spec = pod(workload)
        # a Service's variables (<NAME>_PORT=tcp://...) could look like ENGINE_ settings
        assert spec["enableServiceLinks"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        engine = container(workload)
        assert engine["securityContext"]["readOnlyRootFilesystem"] is True
        assert engine["securityContext"]["allowPrivilegeEscalation"] is False
        assert engine["securityContext"]["capabilities"]["drop"] == ["ALL"]
        sources = [next(iter(source.values()))["name"] for source in engine["envFrom"]]
        assert sources[0].startswith("engine-config-")
        # last: a secret setting overrides the ConfigMap's
        (secret,) = sources[1:]
        assert secret.startswith("engine-secret-settings")
