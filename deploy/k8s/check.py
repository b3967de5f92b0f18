"""Render the overlays of deploy/k8s/ with kustomize and validate every resource offline,
strictly (an unknown field is an error, as ``kubectl apply --validate=strict`` makes it):

- Kubernetes' own kinds against the OpenAPI schemas of each Kubernetes version in
  ``KUBERNETES_VERSIONS``, with ``kubernetes-validate`` (PyPI) in its strict mode;
- the custom resources (Strimzi's Kafka, KafkaNodePool, KafkaTopic; the Prometheus
  Operator's ServiceMonitor, PrometheusRule) against the schemas of their CRDs, which
  deploy/k8s/tools/fetch.sh makes with each operator's own generator at a pinned version;
  unknown fields are refused wherever the CRD does not keep unknown fields, and their
  ``metadata`` is checked as Kubernetes' ObjectMeta;
- every object's name and label syntax, which no schema says (the API server checks it).

Not checked here, since only a cluster can: the CRDs' CEL rules
(``x-kubernetes-validations``), admission webhooks and policies, what the operators accept
beyond their schemas, and whether the pods start. ``python deploy/k8s/check.py [FOLDER...]``
(default: both overlays) prints what it validated; it exits 1 on any problem.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, schema_contents
from referencing import Registry, Resource

HERE = Path(__file__).resolve().parent
OVERLAYS = HERE / "overlays"
TOOLS = HERE / "tools"
KUSTOMIZE = TOOLS / "bin" / "kustomize"
CRDS = TOOLS.parent / "crds"  # committed; deploy/k8s/tools/crds.sh makes them
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.31", "1.37")
DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
OBJECT_META = {"$ref": f"{DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
# RFC 1123 subdomain (most names), RFC 1035 label (Service names), label keys and values.
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are large


class ToolMissingError(Exception):
    """kustomize (deploy/bootstrap.sh fetches it) or the committed CRDs are not there."""


class RenderError(Exception):
    """kustomize refused a kustomization."""


@dataclass(frozen=True)
class Problem:
    resource: str
    message: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.message}"


def render(folder: Path) -> list[dict[str, Any]]:
    """The resources ``kustomize build`` makes of a kustomization folder."""
    if not KUSTOMIZE.is_file():
        raise ToolMissingError(
            f"{KUSTOMIZE} is missing: run deploy/bootstrap.sh (it runs deploy/k8s/tools/fetch.sh)"
        )
    built = subprocess.run(
        [str(KUSTOMIZE), "build", str(folder)], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise RenderError(f"kustomize build {folder}: {built.stderr.strip()}")
    return [document for document in yaml.safe_load_all(built.stdout) if document]


def identity(resource: dict[str, Any]) -> str:
    metadata = resource.get("metadata") or {}
    return f"{resource.get('kind')}/{metadata.get('name')}"


def _structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's OpenAPI v3 schema as a JSON Schema that refuses unknown fields, as the API
    server's strict field validation does: objects with declared properties take no
    others unless the CRD says ``x-kubernetes-preserve-unknown-fields``."""
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            converted[key] = {name: _structural(child) for name, child in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            converted[key] = _structural(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            converted[key] = [_structural(child) for child in value]
        elif not key.startswith("x-kubernetes-") and key != "nullable":
            converted[key] = value
    if schema.get("x-kubernetes-int-or-string") and "type" not in converted:
        converted["type"] = ["integer", "string"]
    if schema.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    if (
        converted.get("type") == "object"
        and "properties" in converted
        and "additionalProperties" not in converted
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        converted["additionalProperties"] = False
    return converted


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON Schema, for every served version of every committed CRD."""
    files = sorted(CRDS.glob("*.yaml"))
    if not files:
        raise ToolMissingError(
            f"no CRD in {CRDS}: deploy/k8s/tools/crds.sh makes them (they are committed)"
        )
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in files:
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = _structural(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = OBJECT_META
                schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return schemas


@functools.cache
def _definitions(version: str) -> Registry[Any]:
    definitions = schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )
    return Resource.from_contents(definitions) @ Registry()


def names_and_labels(resource: dict[str, Any]) -> Iterator[str]:
    metadata = resource.get("metadata") or {}
    name = str(metadata.get("name", ""))
    if resource.get("kind") == "Service":
        if not DNS_LABEL.match(name):
            yield f"a Service name must be an RFC 1035 label (63 characters): {name!r}"
    elif not SUBDOMAIN.match(name) or len(name) > 253:
        yield f"a name must be an RFC 1123 subdomain: {name!r}"
    for key, value in (metadata.get("labels") or {}).items():
        prefix, _, label = key.rpartition("/")
        if (prefix and not SUBDOMAIN.match(prefix)) or not LABEL_NAME.match(label):
            yield f"label key {key!r} is not valid"
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            yield f"label {key}: value {value!r} is not valid"


def validate(resources: list[dict[str, Any]]) -> list[Problem]:
    """Every problem of these resources, against every version of KUBERNETES_VERSIONS."""
    problems: list[Problem] = []
    custom = crd_schemas()
    for resource in resources:
        name = identity(resource)
        problems += [Problem(name, message) for message in names_and_labels(resource)]
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
                continue
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(part) for part in error.path)
                problems.append(Problem(name, f"Kubernetes {version}: {path}: {error.message}"))
                continue
            except SchemaNotFoundError:
                pass
            schema = custom.get((resource.get("apiVersion", ""), resource.get("kind", "")))
            if schema is None:
                problems.append(Problem(name, f"no schema for {resource.get('apiVersion')}"))
                break
            validator = jsonschema.Draft202012Validator(schema, registry=_definitions(version))
            for error in validator.iter_errors(resource):
                path = "/".join(str(part) for part in error.path)
                problems.append(Problem(name, f"CRD schema: {path}: {error.message}"))
            break  # a CRD's schema does not change with Kubernetes' version
    return problems


def main(argv: list[str]) -> int:
    folders = [Path(arg) for arg in argv] or sorted(p for p in OVERLAYS.iterdir() if p.is_dir())
    failed = False
    for folder in folders:
        resources = render(folder)
        problems = validate(resources)
        kinds = Counter(str(resource.get("kind")) for resource in resources)
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        print(f"{folder}: {len(resources)} resources ({summary}): {len(problems)} problems")
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
