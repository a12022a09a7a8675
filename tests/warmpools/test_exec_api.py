"""POST /api/v1/environments/<id>/exec/: the body is checked in one place (warmpools.shapes), and
only the environment's creator and its organization's admins may run commands (queries.can_enter):
another member is refused (403), an outsider does not see it (404). No container is needed for
these: each answer comes before anything reaches the runner."""

import json

import pytest

from warmpools import services
from warmpools.shapes import exec_request

pytestmark = pytest.mark.django_db


def _exec(client, user, environment_id, body):
    client.force_login(user)
    return client.post(
        f"/api/v1/environments/{environment_id}/exec/", data=json.dumps(body), content_type="application/json"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "command"),
        ({"command": []}, "command"),
        ({"command": "ls"}, "command"),
        ({"command": ["sh", 3]}, "command"),
        ({"command": ["sh", "a\x00b"]}, "command"),
        ({"command": ["x"] * 257}, "command"),
        ({"command": ["true"], "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"command": ["true"], "timeoutSeconds": 601}, "timeoutSeconds"),
        ({"command": ["true"], "timeoutSeconds": "5"}, "timeoutSeconds"),
        ({"command": ["true"], "timeoutSeconds": True}, "timeoutSeconds"),
        ({"command": ["true"], "cwd": "/"}, "cwd"),
    ],
)
def test_a_bad_exec_body_is_a_400_that_names_the_field(org, client, body, field):
    environment = services.environment_create(actor=org.member, project=org.project)
    response = _exec(client, org.member, environment.id, body)
    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["code"] == "invalid_argument"
    assert field in json.dumps(answer)


def test_the_exec_shape_gives_the_command_and_a_default_timeout():
    assert exec_request({"command": ["sh", "-c", "echo hi"]}) == (["sh", "-c", "echo hi"], 60)
    assert exec_request({"command": ["true"], "timeoutSeconds": 5}) == (["true"], 5)


def test_only_the_creator_and_admins_may_exec(org, client):
    environment = services.environment_create(actor=org.admin, project=org.project)
    body = {"command": ["true"]}
    # Another member sees the environment listed but may not run commands in it.
    response = _exec(client, org.member, environment.id, body)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    # An outsider does not learn it exists.
    response = _exec(client, org.outsider, environment.id, body)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    # The creator gets past the permission check: a cold environment still being built has no
    # container to run in.
    response = _exec(client, org.admin, environment.id, body)
    assert (response.status_code, response.json()["code"]) == (400, "failed_precondition")
