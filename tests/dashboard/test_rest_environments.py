"""REST environments: create from a project and class, list, retrieve, delete."""

import pytest

from warmpools.models import Environment, EnvironmentPhase

pytestmark = pytest.mark.django_db


def test_create_list_retrieve_and_delete_an_environment(org, api):
    member = api["member"]
    response = member.rest("post", "/api/v1/environments/", {"projectId": str(org.project.id)})
    assert response.status_code == 201, response.content
    created = response.json()
    # No pool and no snapshot yet: it is built cold on the runner, and says so.
    assert (created["source"], created["phase"]) == ("cold", "creating")
    assert created["projectId"] == str(org.project.id)
    assert created["environmentClassId"] == str(org.small.id)
    assert created["creatorId"] == str(org.member.id)
    assert created["readyAfterMs"] is None

    listed = member.rest("get", "/api/v1/environments/").json()
    assert [e["id"] for e in listed["environments"]] == [created["id"]]
    assert listed["pagination"] == {"nextToken": ""}
    assert member.rest("get", f"/api/v1/environments/{created['id']}/").json()["id"] == created["id"]

    assert api["outsider"].rest("get", f"/api/v1/environments/{created['id']}/").status_code == 404
    assert api["outsider"].rest("get", "/api/v1/environments/").json()["environments"] == []
    assert member.rest("delete", f"/api/v1/environments/{created['id']}/").status_code == 204
    assert Environment.objects.get(id=created["id"]).phase == EnvironmentPhase.DELETING


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "invalid_argument"),
        ({"projectId": "00000000-0000-0000-0000-000000000000"}, 404, "not_found"),
        ({"environmentClassId": "unconfigured"}, 400, "failed_precondition"),
    ],
)
def test_environment_errors(org, api, body, status, code):
    if "environmentClassId" in body:
        body = {"projectId": str(org.project.id), "environmentClassId": str(org.unconfigured.id)}
    response = api["member"].rest("post", "/api/v1/environments/", body)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not Environment.objects.exists()


def test_anonymous_callers_get_401(org, client):
    assert client.get("/api/v1/environments/").status_code == 401
