"""Who may do what, against every endpoint of both APIs: anonymous, an outsider (admin of another
organization), a member and an admin. Each answer is checked: status and code, and for lists that
an outsider sees nothing of the organization."""

import json

import pytest

from prebuilds import services as prebuild_services
from warmpools import services as pool_services

pytestmark = pytest.mark.django_db

ROLES = [None, "outsider", "member", "admin"]


@pytest.fixture
def objects(org):
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, max_size=2
    )
    return {"prebuild": prebuild, "pool": pool, "org": org}


def project_body(o):
    return {"name": "new", "repositoryUrl": "/srv/git/new", "organizationId": str(o["org"].organization.id)}


# (method, path, body) -> expected status for anonymous, outsider, member, admin.
REST = [
    ("get", "/api/v1/prebuilds/", None, (401, 200, 200, 200)),
    ("post", "/api/v1/prebuilds/", lambda o: {"projectId": str(o["org"].project.id), "spec": {}}, (401, 404, 201, 201)),
    ("get", "/api/v1/prebuilds/{prebuild}/", None, (401, 404, 200, 200)),
    ("post", "/api/v1/prebuilds/{prebuild}/cancel/", None, (401, 404, 200, 200)),
    ("post", "/api/v1/prebuilds/{prebuild}/logs-token/", None, (401, 404, 200, 200)),
    ("delete", "/api/v1/prebuilds/{prebuild}/", None, (401, 404, 403, 204)),
    ("get", "/api/v1/warm-pools/", None, (401, 200, 200, 200)),
    (
        "post",
        "/api/v1/warm-pools/",
        lambda o: {"projectId": str(o["org"].project.id), "environmentClassId": str(o["org"].large.id), "maxSize": 1},
        (401, 404, 403, 201),
    ),
    ("get", "/api/v1/warm-pools/{pool}/", None, (401, 404, 200, 200)),
    ("post", "/api/v1/warm-pools/{pool}/resize/", lambda o: {"maxSize": 3}, (401, 404, 403, 200)),
    ("delete", "/api/v1/warm-pools/{pool}/", None, (401, 404, 403, 204)),
    ("get", "/api/v1/projects/", None, (401, 200, 200, 200)),
    ("post", "/api/v1/projects/", project_body, (401, 404, 403, 201)),
    ("get", "/api/v1/projects/{project}/", None, (401, 404, 200, 200)),
    ("patch", "/api/v1/projects/{project}/", lambda o: {"branch": "dev"}, (401, 404, 403, 200)),
    ("put", "/api/v1/projects/{project}/", lambda o: {"name": "app2", "repositoryUrl": "/srv/x"}, (401, 404, 403, 200)),
    ("delete", "/api/v1/projects/{project}/", None, (401, 404, 403, 204)),
    ("get", "/api/v1/environment-classes/", None, (401, 200, 200, 200)),
]
CODES = {401: "unauthenticated", 403: "permission_denied", 404: "not_found"}
LISTS = {
    "/api/v1/prebuilds/": "prebuilds",
    "/api/v1/warm-pools/": "warmPools",
    "/api/v1/projects/": "projects",
    "/api/v1/environment-classes/": "environmentClasses",
}


@pytest.mark.parametrize("method, path, body, expected", REST, ids=[f"{m} {p}" for m, p, _, _ in REST])
@pytest.mark.parametrize("role", ROLES, ids=["anonymous", "outsider", "member", "admin"])
def test_rest_authorization(api, objects, role, method, path, body, expected):
    url = path.format(prebuild=objects["prebuild"].id, pool=objects["pool"].id, project=objects["org"].project.id)
    response = api[role].rest(method, url, body(objects) if body else None)
    status = expected[ROLES.index(role)]
    assert response.status_code == status, response.content
    if status in CODES:
        assert response.json()["code"] == CODES[status]
    if role == "outsider" and method == "get" and url in LISTS:
        assert response.json()[LISTS[url]] == []


# method -> (request body, expected code for anonymous, outsider, member, admin); "ok" is HTTP 200.
CONNECT = {
    "CreatePrebuild": (lambda o: {"projectId": str(o["org"].project.id), "spec": {}}, ("ok", "not_found")),
    "GetPrebuild": (lambda o: {"prebuildId": str(o["prebuild"].id)}, ("ok", "not_found")),
    "ListPrebuilds": (lambda o: {}, ("ok", "ok")),
    "CancelPrebuild": (lambda o: {"prebuildId": str(o["prebuild"].id)}, ("ok", "not_found")),
    "CreatePrebuildLogsToken": (lambda o: {"prebuildId": str(o["prebuild"].id)}, ("ok", "not_found")),
    "DeletePrebuild": (lambda o: {"prebuildId": str(o["prebuild"].id)}, ("permission_denied", "not_found")),
    "CreateWarmPool": (
        lambda o: {"projectId": str(o["org"].project.id), "environmentClassId": str(o["org"].large.id), "maxSize": 1},
        ("permission_denied", "not_found"),
    ),
    "GetWarmPool": (lambda o: {"warmPoolId": str(o["pool"].id)}, ("ok", "not_found")),
    "ListWarmPools": (lambda o: {}, ("ok", "ok")),
    "UpdateWarmPool": (lambda o: {"warmPoolId": str(o["pool"].id), "maxSize": 3}, ("permission_denied", "not_found")),
    "DeleteWarmPool": (lambda o: {"warmPoolId": str(o["pool"].id)}, ("permission_denied", "not_found")),
}
STATUS = {"ok": 200, "unauthenticated": 401, "permission_denied": 403, "not_found": 404}


@pytest.mark.parametrize("method", CONNECT)
@pytest.mark.parametrize("role", ROLES, ids=["anonymous", "outsider", "member", "admin"])
def test_connect_authorization(api, objects, role, method):
    body, (member, outsider) = CONNECT[method]
    expected = {None: "unauthenticated", "outsider": outsider, "member": member, "admin": "ok"}[role]
    response = api[role].connect_json(method, body(objects))
    assert response.status_code == STATUS[expected], response.content
    data = json.loads(response.content)
    if expected != "ok":
        assert data["code"] == expected
    elif role == "outsider":  # a list: nothing of the other organization
        assert data.get("prebuilds", []) == [] and data.get("warmPools", []) == []
