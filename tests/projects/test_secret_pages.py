"""The secrets pages of a project and of the organization: admins add, replace and delete (after a
confirmation), members see names and scopes, outsiders get not found; no response ever holds a value."""

import base64

import pytest
from cryptography.fernet import Fernet
from django.urls import reverse

from projects import services
from projects.models import Secret, SecretChange

pytestmark = pytest.mark.django_db

VALUE = "page-secret-Value+/="


@pytest.fixture(autouse=True)
def keys(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]


def holds_no_value(response):
    body = response.content.decode()
    for form in (VALUE, base64.b64encode(VALUE.encode()).decode()):
        assert form not in body
    return body


@pytest.mark.parametrize("level", ["project", "organization"])
def test_admin_adds_replaces_and_deletes_and_no_page_shows_the_value(client, org, level):
    url = reverse("projects:secrets", args=[org.project.id]) if level == "project" else reverse("projects:org-secrets")
    client.force_login(org.admin)
    response = client.post(url, {"name": "NPM_TOKEN", "value": VALUE, "scope": "prebuilds"}, follow=True)
    body = holds_no_value(response)
    assert "NPM_TOKEN" in body and "Prebuilds" in body
    secret = Secret.objects.get(name="NPM_TOKEN")
    assert (secret.project_id is not None) == (level == "project")
    # An invalid post is redisplayed without the value typed.
    holds_no_value(client.post(url, {"name": "1BAD", "value": VALUE, "scope": "both"}))
    holds_no_value(client.post(url, {"name": "NPM_TOKEN", "value": VALUE + "x", "scope": "both"}, follow=True))
    delete = (
        reverse("projects:secret-delete", args=[org.project.id, secret.id])
        if level == "project"
        else reverse("projects:org-secret-delete", args=[secret.id])
    )
    asked = client.post(delete)
    assert "Delete secret NPM_TOKEN?" in holds_no_value(asked)
    assert Secret.objects.filter(pk=secret.pk).exists()
    holds_no_value(client.post(delete, {"confirmed": "yes"}, follow=True))
    assert not Secret.objects.filter(pk=secret.pk).exists()
    body = holds_no_value(client.get(url))
    assert list(SecretChange.objects.values_list("action", flat=True).order_by("created_at")) == [
        "created",
        "replaced",
        "deleted",
    ]
    assert "deleted" in body


def test_member_sees_names_only_and_cannot_change(client, org):
    services.secret_set(actor=org.admin, project=org.project, name="NPM_TOKEN", value=VALUE)
    url = reverse("projects:secrets", args=[org.project.id])
    client.force_login(org.member)
    body = holds_no_value(client.get(url))
    assert "NPM_TOKEN" in body and "Save secret" not in body
    assert client.post(url, {"name": "OTHER", "value": VALUE, "scope": "both"}).status_code == 403
    secret = Secret.objects.get()
    assert client.post(reverse("projects:secret-delete", args=[org.project.id, secret.id])).status_code == 403
    assert Secret.objects.count() == 1


def test_outsider_gets_not_found(client, org):
    services.secret_set(actor=org.admin, organization=org.organization, name="ACME_DEPLOY_KEY", value=VALUE)
    secret = Secret.objects.get(name="ACME_DEPLOY_KEY")
    services.secret_set(actor=org.admin, project=org.project, name="APP_KEY", value=VALUE)
    project_secret = Secret.objects.get(name="APP_KEY")
    client.force_login(org.outsider)
    assert client.get(reverse("projects:secrets", args=[org.project.id])).status_code == 404
    delete = reverse("projects:secret-delete", args=[org.project.id, project_secret.id])
    assert client.post(delete, {"confirmed": "yes"}).status_code == 404
    # An organization secret of Acme is not found under the outsider's own organization.
    org_delete = reverse("projects:org-secret-delete", args=[secret.id])
    assert client.post(org_delete, {"confirmed": "yes"}).status_code == 404
    # Their own organization's page does not list Acme's organization secrets either.
    body = holds_no_value(client.get(reverse("projects:org-secrets")))
    assert "ACME_DEPLOY_KEY" not in body
    assert Secret.objects.count() == 2


def test_admin_site_never_shows_the_value(admin_client, org):
    services.secret_set(actor=org.admin, organization=org.organization, name="NPM_TOKEN", value=VALUE)
    secret = Secret.objects.get()
    for url in (
        reverse("admin:projects_secret_changelist"),
        reverse("admin:projects_secret_change", args=[secret.pk]),
        reverse("admin:projects_secretchange_changelist"),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200
        body = holds_no_value(response)
        assert secret.encrypted_value not in body
