"""Fuzzing the REST API from its own OpenAPI schema (schemathesis, in-process against the WSGI app):
well over 1,000 generated requests, as an admin with a real token, and never a 5xx; the answers also
match the documented status codes and response schemas.

Each operation's test checks that it sent its share of the requests itself, so that the count holds
whichever tests run and in whatever order (one summing test at the end failed when run alone)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from dashboard.wsgi import application
from projects.services import api_token_create

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

EXAMPLES_PER_OPERATION = 70
# Each operation gets at least this many requests (measured: 77 to 264, generated and coverage
# cases); with every operation of the schema, that is over a thousand.
MIN_REQUESTS_PER_OPERATION = 50


@pytest.fixture
def sent():
    """The requests one operation's test sent, counted after hypothesis is done with all its cases."""
    requests = []
    yield requests
    assert len(requests) >= MIN_REQUESTS_PER_OPERATION, f"only {len(requests)} requests were sent"


@pytest.fixture
def admin_headers(org, django_settings_for_fuzzing):
    return {"Authorization": "Bearer " + api_token_create(user=org.admin, name="fuzz")[1]}


@pytest.fixture
def django_settings_for_fuzzing():
    from django.conf import settings as django_settings

    # The requests share one database transaction (the test's); Django must not close the connection
    # after each request, as the test client also arranges. And one token sends them all: no throttle.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    with override_settings(
        REST_FRAMEWORK={**django_settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api": "1000000/min"}}
    ):
        yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.fuzz
@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_never_answers_with_a_server_error(case, admin_headers, sent):
    sent.append(case.operation.label)
    case.call_and_validate(
        headers=admin_headers,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )


def test_the_operations_fuzzed_get_well_over_a_thousand_requests():
    operations = [result.ok().label for result in schema.get_all_operations()]
    assert len(operations) * MIN_REQUESTS_PER_OPERATION >= 1000, operations
