"""Hostile request bodies and parameters: deeply nested JSON, odd numbers (NaN, 1e999, huge
integers), to every endpoint that reads JSON or numbers. Each answer is the interface's own
"invalid input" (HTTP 400 with a message, Connect invalid_argument), never a 500."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from prebuilds import services as prebuild_services
from projects.services import api_token_create

CONNECT = "/gitpod.v1.PrebuildService/"
DEEP_ARRAY = "[" * 100_000
DEEP_OBJECT = '{"a": ' * 50_000
HUGE_INT = "9" * 5000

CONNECT_METHODS = [
    "CreatePrebuild",
    "GetPrebuild",
    "ListPrebuilds",
    "CancelPrebuild",
    "DeletePrebuild",
    "CreatePrebuildLogsToken",
    "CreateWarmPool",
    "GetWarmPool",
    "ListWarmPools",
    "UpdateWarmPool",
    "DeleteWarmPool",
]


@pytest.fixture
def admin_headers(org):
    return {"Authorization": f"Bearer {api_token_create(user=org.admin, name='t')[1]}"}


@pytest.fixture
def prebuild(org):
    return prebuild_services.prebuild_create(actor=org.admin, project=org.project, environment_class_id=org.small.id)


@pytest.fixture
def pool(org, prebuild):
    from warmpools import services as pool_services

    return pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=0, max_size=2
    )


def rest_endpoints(org, prebuild, pool):
    """(method, path) of every REST endpoint that reads a JSON body."""
    return [
        ("post", "/api/v1/prebuilds/"),
        ("post", "/api/v1/warm-pools/"),
        ("post", f"/api/v1/warm-pools/{pool.id}/resize/"),
        ("post", "/api/v1/environments/"),
        ("post", "/api/v1/projects/"),
        ("patch", f"/api/v1/projects/{org.project.id}/"),
        ("put", f"/api/v1/projects/{org.project.id}/"),
    ]


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_to_every_rest_endpoint_is_400(org, prebuild, pool, admin_headers, body):
    for method, path in rest_endpoints(org, prebuild, pool):
        response = getattr(Client(), method)(path, data=body, content_type="application/json", headers=admin_headers)
        assert response.status_code == 400, (method, path, response.status_code)
        error = response.json()
        assert error["code"] == "invalid_argument"
        assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_to_rest_endpoints_that_read_no_body_is_not_a_500(org, prebuild, admin_headers, body):
    for path in (f"/api/v1/prebuilds/{prebuild.id}/logs-token/", f"/api/v1/prebuilds/{prebuild.id}/cancel/"):
        response = Client().post(path, data=body, content_type="application/json", headers=admin_headers)
        assert response.status_code < 500, (path, response.status_code)


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_deeply_nested_json_to_every_connect_method_is_invalid_argument(org, admin_headers, body):
    for method in CONNECT_METHODS:
        response = Client().post(CONNECT + method, data=body, content_type="application/json", headers=admin_headers)
        assert response.status_code == 400, (method, response.status_code)
        error = response.json()
        assert error["code"] == "invalid_argument"
        assert "nested too deeply" in error["message"]
        assert "recursion" not in error["message"]  # the interpreter's words stay inside


def test_deeply_nested_json_in_a_connect_get_request_is_invalid_argument(org, admin_headers):
    response = Client().get(
        CONNECT + "ListPrebuilds",
        {"encoding": "json", "message": DEEP_ARRAY, "connect": "v1"},
        headers=admin_headers,
    )
    assert response.status_code in (400, 405), response.status_code
    if response.status_code == 400:
        assert response.json()["code"] == "invalid_argument"


def test_a_nested_page_token_is_invalid_argument(org, admin_headers):
    token = base64.urlsafe_b64encode(DEEP_ARRAY.encode()).decode().rstrip("=")
    response = Client().post(
        CONNECT + "ListPrebuilds",
        data=json.dumps({"pagination": {"token": token}}),
        content_type="application/json",
        headers=admin_headers,
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"
    response = Client().get("/api/v1/prebuilds/", {"token": token[:3000]}, headers=admin_headers)
    assert response.status_code == 400


ODD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", HUGE_INT, "99999999999999999999999999", "-1", "1.5"]


@pytest.mark.parametrize("number", ODD_NUMBERS)
def test_odd_numbers_in_rest_bodies_are_400_not_500(org, prebuild, pool, admin_headers, number):
    project, small = org.project.id, org.small.id
    pair = f'"projectId": "{project}", "environmentClassId": "{small}"'
    bodies = [
        ("post", "/api/v1/warm-pools/", f'{{{pair}, "maxSize": {number}}}'),
        ("post", "/api/v1/warm-pools/", f'{{{pair}, "minSize": {number}, "maxSize": 2}}'),
        ("post", f"/api/v1/warm-pools/{pool.id}/resize/", f'{{"maxSize": {number}}}'),
        ("post", f"/api/v1/warm-pools/{pool.id}/resize/", f'{{"desiredSize": {number}}}'),
        ("post", "/api/v1/prebuilds/", f'{{"projectId": "{project}", "spec": {{"timeout": {number}}}}}'),
        ("post", "/api/v1/prebuilds/", f'{{"projectId": "{project}", "spec": {{"timeout": "{number}s"}}}}'),
        ("patch", f"/api/v1/projects/{project}/", f'{{"prebuildTimeout": "{number}s"}}'),
        ("patch", f"/api/v1/projects/{project}/", f'{{"prebuildTimeout": {number}}}'),
        ("patch", f"/api/v1/projects/{project}/", f'{{"name": {number}}}'),
    ]
    for method, path, body in bodies:
        response = getattr(Client(), method)(path, data=body, content_type="application/json", headers=admin_headers)
        assert response.status_code < 500, (path, body[:120], response.status_code)
        if response.status_code >= 400:
            assert response.json()["code"] in ("invalid_argument", "failed_precondition"), response.content


@pytest.mark.parametrize("number", ODD_NUMBERS)
def test_odd_numbers_in_connect_bodies_are_invalid_argument_not_internal(org, pool, admin_headers, number):
    project, small = org.project.id, org.small.id
    bodies = [
        ("CreateWarmPool", f'{{"projectId": "{project}", "environmentClassId": "{small}", "maxSize": {number}}}'),
        ("UpdateWarmPool", f'{{"warmPoolId": "{pool.id}", "maxSize": {number}}}'),
        ("UpdateWarmPool", f'{{"warmPoolId": "{pool.id}", "desiredSize": "{number}"}}'),
        ("ListPrebuilds", f'{{"pagination": {{"pageSize": {number}}}}}'),
        ("CreatePrebuild", f'{{"projectId": "{project}", "spec": {{"timeout": "{number}s"}}}}'),
    ]
    for method, body in bodies:
        response = Client().post(CONNECT + method, data=body, content_type="application/json", headers=admin_headers)
        assert response.status_code < 500, (method, body[:120], response.status_code, response.content[:300])


@pytest.mark.parametrize("number", ["-1", "1e999", HUGE_INT, "99999999999999999999999999", "NaN", "x"])
def test_odd_numbers_to_the_logs_endpoint_are_400_not_500(org, prebuild, number):
    from prebuilds import logstore

    logstore.append(prebuild.id, 1, [("clone", "stdout", f"line {n}") for n in range(5)])
    token = prebuild_services.prebuild_create_logs_token(actor=org.admin, prebuild=prebuild)
    for name in ("after", "before", "tail", "limit"):
        response = Client().get(f"/logs/{prebuild.id}", {name: number}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code in (200, 400), (name, number, response.status_code)
        if response.status_code == 400:
            assert response.json()["code"] == "invalid_argument"


@pytest.mark.parametrize("number", ["-1", HUGE_INT, "99999999999999999999999999", "NaN"])
def test_odd_numbers_in_rest_query_parameters_are_400_not_500(org, admin_headers, number):
    for path in ("/api/v1/prebuilds/", "/api/v1/warm-pools/", "/api/v1/environments/", "/api/v1/projects/"):
        response = Client().get(path, {"page_size": number}, headers=admin_headers)
        assert response.status_code in (200, 400), (path, number, response.status_code)


def test_a_json_body_to_the_pages_is_not_a_500(org):
    """The pages read forms; a JSON body (nested or not) is just not a form."""
    client = Client()
    client.force_login(org.admin)
    for path in ("/prebuilds/", "/warm-pools/", "/prebuilds/bulk", f"/projects/{org.project.id}/", "/settings/tokens/"):
        response = client.post(path, data=DEEP_ARRAY, content_type="application/json")
        assert response.status_code < 500, (path, response.status_code)
