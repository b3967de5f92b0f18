"""schemathesis calls every operation of the served OpenAPI document against ``engine api``
on the real broker: no 5xx, only declared statuses, responses matching their schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from engine.api.openapi import openapi_document
from tests.integration.api_process import TOKEN, api_process, get_json
from tests.integration.harness import wait_until

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def api_url(
    topics: str, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with api_process(topics, Path(tmp_path_factory.mktemp("api-contract")), topic_prefix) as url:
        # Reads answer 503 while the view loads; the contract is about a ready API.
        wait_until(lambda: get_json(f"{url}/health")["view"] == "ready", 120, "the view")
        yield url


def test_the_served_document_is_the_generated_one(api_url: str) -> None:
    assert get_json(f"{api_url}/openapi.json") == openapi_document()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_operation_fails_on_generated_input(case: schemathesis.Case[Any], api_url: str) -> None:
    case.call_and_validate(
        base_url=api_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
