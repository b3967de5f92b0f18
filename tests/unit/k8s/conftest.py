"""Each overlay rendered once per session by kustomize (deploy/k8s/tools/, fetched by
deploy/bootstrap.sh). A missing kustomize or CRD schema fails the tests that need them,
never skips them: an unchecked manifest must not pass for a checked one."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.unit.k8s.manifests import K8S, OVERLAYS, Resource, load


@pytest.fixture(scope="session")
def check() -> ModuleType:
    return load("check")


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return load("generate")


@pytest.fixture(scope="session")
def rendered(check: ModuleType) -> dict[str, list[Resource]]:
    """Each overlay's resources, as ``kustomize build`` makes them."""
    try:
        return {overlay: check.render(K8S / "overlays" / overlay) for overlay in OVERLAYS}
    except check.ToolMissingError as error:
        pytest.fail(str(error), pytrace=False)
