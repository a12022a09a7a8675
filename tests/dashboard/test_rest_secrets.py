"""/api/v1/secrets/: admins write, members list names and scopes, outsiders get not found; no
response, error or schema example ever holds a value."""

import base64

import pytest
from cryptography.fernet import Fernet

from projects.models import Secret

pytestmark = pytest.mark.django_db

URL = "/api/v1/secrets/"
VALUE = "rest-secret-Value+/=q"


@pytest.fixture(autouse=True)
def keys(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]


def clean(response):
    body = response.content.decode()
    for form in (VALUE, base64.b64encode(VALUE.encode()).decode()):
        assert form not in body
    return response


def test_admin_writes_member_lists_outsider_gets_not_found(api, org):
    project = str(org.project.id)
    created = clean(api["admin"].rest("post", URL, {"projectId": project, "name": "NPM_TOKEN", "value": VALUE}))
    assert created.status_code == 201, created.content
    assert "value" not in created.json() and created.json()["name"] == "NPM_TOKEN"
    organization = str(org.organization.id)
    assert (
        clean(
            api["admin"].rest(
                "post", URL, {"organizationId": organization, "name": "ORG_KEY", "value": VALUE, "scope": "prebuilds"}
            )
        ).status_code
        == 201
    )
    listed = clean(api["member"].rest("get", URL, projectId=project))
    assert [(s["name"], s["scope"]) for s in listed.json()["secrets"]] == [("NPM_TOKEN", "both")]
    listed = clean(api["member"].rest("get", URL, organizationId=organization))
    assert [s["name"] for s in listed.json()["secrets"]] == ["ORG_KEY"]

    denied = clean(api["member"].rest("post", URL, {"projectId": project, "name": "X_KEY", "value": VALUE}))
    assert denied.status_code == 403
    for call in (
        ("get", URL, None, {"projectId": project}),
        ("get", URL, None, {"organizationId": organization}),
        ("post", URL, {"projectId": project, "name": "X_KEY", "value": VALUE}, {}),
        ("post", URL, {"organizationId": organization, "name": "X_KEY", "value": VALUE}, {}),
        ("delete", f"{URL}{Secret.objects.get(name='NPM_TOKEN').id}/", None, {}),
    ):
        method, path, body, params = call
        assert clean(api["outsider"].rest(method, path, body, **params)).status_code == 404
    invalid = clean(api["admin"].rest("post", URL, {"projectId": project, "name": "1BAD", "value": VALUE}))
    assert invalid.status_code == 400
    assert clean(api["member"].rest("delete", f"{URL}{Secret.objects.get(name='ORG_KEY').id}/")).status_code == 403
    assert clean(api["admin"].rest("delete", f"{URL}{Secret.objects.get(name='ORG_KEY').id}/")).status_code == 204
    assert set(Secret.objects.values_list("name", flat=True)) == {"NPM_TOKEN"}


def test_schema_documents_value_as_write_only(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    schemas = schema["components"]["schemas"]
    # The request's shape carries the value; the answer's has none.
    assert "value" in schemas["SecretRequest"]["properties"]
    assert "value" not in schemas["Secret"]["properties"]
    assert "/api/v1/secrets/" in schema["paths"]
