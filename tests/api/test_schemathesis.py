"""Property-based run of the whole REST API against its own OpenAPI schema (schemathesis).

Every operation in the live schema is called with generated input, authenticated with an admin key of a
project that holds real data: no input may produce a 5xx, and every response must conform to the schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from django.core import signals
from django.db import close_old_connections

from controlplane.apikeys import issue_key
from controlplane.models import Project


@pytest.fixture(autouse=True)
def _keep_test_connection(db: None) -> Iterator[None]:
    """Like Django's test client: keep the test transaction's connection open across in-process requests."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_headers(db: None) -> dict[str, str]:
    project = Project.objects.create(slug="fuzz", name="Fuzz")
    return {"Authorization": f"Bearer {issue_key(project, ['admin', 'read']).secret}"}


def _load_schema() -> schemathesis.BaseSchema:
    from controlplane.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


schema = _load_schema()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_and_never_5xx(case: schemathesis.Case, admin_headers: dict[str, str]) -> None:
    case.call_and_validate(
        headers=admin_headers,
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance],
    )
