"""Log in and out, the organization switcher, the API tokens page and the overview."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from projects.models import ApiToken, Role
from warmpools.models import WarmPoolPhase

pytestmark = pytest.mark.django_db


def test_login_page_logs_in_and_out(client, org):
    body = client.get(reverse("login")).content.decode()
    assert '<label for="id_username">Username</label>' in body and '<label for="id_password">Password</label>' in body
    assert ">Log in</button>" in body
    response = client.post(reverse("login"), {"username": "bob", "password": "wrong"})
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    response = client.post(reverse("login"), {"username": "bob", "password": "pw-bob"})
    assert response.status_code == 302 and response["Location"] == reverse("overview")
    assert client.get(reverse("overview")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("overview")).status_code == 302


# --- organization switcher ---------------------------------------------------------------------------


@pytest.fixture
def second_org(org, make_prebuild):
    """bob is also an admin of a second organization with its own project and prebuild."""
    second = project_services.organization_create(name="Beta")
    project_services.membership_set(organization=second, user=org.member, role=Role.ADMIN)
    runner = project_services.runner_create(organization=second, name="r2", queue="runner-beta")
    cls = project_services.environment_class_create(runner=runner, display_name="beta-small")
    project = project_services.project_create(
        actor=org.member,
        organization=second,
        name="beta-app",
        repository_url="/srv/git/beta",
        default_environment_class_id=cls.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[cls.id],
    )
    from prebuilds import services as prebuild_services

    prebuild = prebuild_services.prebuild_create(actor=org.member, project=project)
    return second, project, prebuild


def test_a_user_in_one_organization_sees_no_switcher(client, org):
    client.force_login(org.admin)
    body = client.get(reverse("overview")).content.decode()
    assert 'id="org-switcher"' not in body and "Acme" in body


def test_switching_organizations_changes_the_lists(client, org, second_org, make_prebuild):
    second, project, beta_prebuild = second_org
    acme_prebuild = make_prebuild()
    client.force_login(org.member)
    body = client.get("/prebuilds/").content.decode()
    assert 'id="org-switcher"' in body and "<label" in body
    assert str(acme_prebuild.id) in body and str(beta_prebuild.id) not in body  # Acme comes first by name
    response = client.post(
        reverse("switch-organization"), {"organization_id": second.id, "next": f"/prebuilds/{acme_prebuild.id}/"}
    )
    assert response.status_code == 302 and response["Location"] == "/prebuilds/"
    body = client.get("/prebuilds/").content.decode()
    assert str(beta_prebuild.id) in body and str(acme_prebuild.id) not in body
    assert "beta-app" in client.get("/projects/").content.decode()
    # Admin in Beta, member in Acme: the buttons follow the current organization's role.
    assert "Delete selected" in body
    # Objects of the other organization stay reachable by their own page.
    assert client.get(f"/prebuilds/{acme_prebuild.id}/").status_code == 200


def test_switching_to_an_organization_one_is_not_in_is_refused(client, org, second_org):
    client.force_login(org.admin)
    second, _, _ = second_org
    client.post(reverse("switch-organization"), {"organization_id": second.id, "next": "https://evil.example/"})
    body = client.get("/projects/").content.decode()
    assert "You are not a member of that organization." in body and "beta-app" not in body


# --- API tokens ----------------------------------------------------------------------------------------


def test_create_a_token_redirects_and_shows_the_secret_once(client, org):
    client.force_login(org.member)
    response = client.post(reverse("api-tokens"), {"name": "ci", "expires_in_days": "30"})
    # POST-redirect-GET: reloading the page that shows the secret does not create a second token.
    assert response.status_code == 302 and response["Location"] == reverse("api-tokens")
    token = ApiToken.objects.get()
    assert token.user == org.member and token.expires_at > timezone.now() + timedelta(days=29)
    response = client.get(response["Location"])
    body = response.content.decode()
    secret = response.context["secret"]
    assert secret.startswith(token.prefix) and secret in body and "shown only this once" in body
    assert "no-store" in response["Cache-Control"]  # nor kept in the browser's cache
    # The reload: no second token, and the secret is gone.
    body = client.get(reverse("api-tokens")).content.decode()
    assert secret not in body and f"{token.prefix}…" in body and "never" in body
    assert ApiToken.objects.count() == 1
    assert "new_api_token_secret" not in client.session
    assert project_services.api_token_authenticate(secret) == org.member


def test_the_secret_is_shown_only_to_its_own_session(client, org):
    client.force_login(org.member)
    client.post(reverse("api-tokens"), {"name": "ci"})
    other = Client()
    other.force_login(org.member)
    assert other.get(reverse("api-tokens")).context["secret"] == ""
    assert client.get(reverse("api-tokens")).context["secret"].startswith("pbk_")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "Enter a name for the token."),
        ({"name": "x", "expires_in_days": "-1"}, "expires_in_days", "Enter a number of days from 1 to 3650"),
        ({"name": "x", "expires_in_days": "0"}, "expires_in_days", "Enter a number of days from 1 to 3650"),
        # A lifetime past what a date can hold was a server error once; now it is a limit in the input too.
        ({"name": "x", "expires_in_days": "99999999"}, "expires_in_days", "Enter a number of days from 1 to 3650"),
    ],
)
def test_token_form_errors(client, org, data, field, message):
    client.force_login(org.member)
    response = client.post(reverse("api-tokens"), data)
    assert message in response.context["form"].errors[field][0]
    assert not ApiToken.objects.exists()


def test_revoke_own_tokens_only(client, org):
    mine, _ = project_services.api_token_create(user=org.member, name="mine")
    theirs, _ = project_services.api_token_create(user=org.admin, name="theirs")
    client.force_login(org.member)
    body = client.get(reverse("api-tokens")).content.decode()
    assert "mine" in body and "theirs" not in body
    assert client.post(reverse("api-token-revoke", args=[theirs.id]), {"confirmed": "yes"}).status_code == 404
    assert client.post(reverse("api-token-revoke", args=[theirs.id])).status_code == 404  # not even the question
    asked = client.post(reverse("api-token-revoke", args=[mine.id])).content.decode()
    assert "Revoke token mine?" in asked and f"mine ({mine.prefix}…)" in asked and "refused from now on" in asked
    mine.refresh_from_db()
    assert mine.revoked_at is None
    response = client.post(reverse("api-token-revoke", args=[mine.id]), {"confirmed": "yes"})
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None
    assert "revoked" in client.get(reverse("api-tokens")).content.decode()


# --- overview ----------------------------------------------------------------------------------------


def test_overview_shows_phases_running_progress_pool_health_and_failures(client, org, make_prebuild, make_pool):
    make_prebuild(phase=PrebuildPhase.SNAPSHOTTING, snapshot_completion_percentage=70)
    make_prebuild(phase=PrebuildPhase.FAILED, failure_message="updateContentCommand exited with 3")
    make_pool(phase=WarmPoolPhase.DEGRADED, failure_message="disk full on runner local")
    client.force_login(org.member)
    response = client.get(reverse("overview"))
    body = response.content.decode()
    # Only the phases something is in, with the total.
    assert dict((p.label, n) for p, n in response.context["prebuild_phases"]) == {"Snapshotting": 1, "Failed": 1}
    assert "2 in all" in body and ">Pending</span> <strong>0" not in body
    assert 'value="70"' in body and "70%" in body
    assert "updateContentCommand exited with 3" in body
    # A degraded pool in a sentence, not its raw message.
    assert "The runner&#x27;s disk is full, so no new instance fits on it." in body
    assert "Get started" not in body


def test_an_empty_organization_gets_told_what_to_do_first(client, org):
    client.force_login(org.admin)
    body = client.get(reverse("overview")).content.decode()
    assert "Get started" in body and "Prebuilds by phase" not in body
    assert "A project exists (app)." in body and "Prebuilds are enabled on an environment class." in body
    assert 'href="/prebuilds/#trigger">Trigger the first prebuild</a>' in body
    assert '<a href="/warm-pools/">create a warm pool</a>' in body
    org.project.delete()
    body = client.get(reverse("overview")).content.decode()
    assert f'<a href="{reverse("projects:create")}">Create a project</a>' in body
    client.force_login(org.member)
    assert "An organization admin creates a project" in client.get(reverse("overview")).content.decode()


def test_overview_refreshes_while_open_and_costs_a_204_when_unchanged(client, org, make_prebuild, make_pool):
    running = make_prebuild(phase=PrebuildPhase.RUNNING)
    make_pool()
    client.force_login(org.member)
    page = client.get(reverse("overview")).content.decode()
    assert 'hx-trigger="every 2s, page-visible from:body"' in page
    version = page.split('"X-Shown-Version": "', 1)[1].split('"', 1)[0]
    live = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "overview-live", "HTTP_X_SHOWN_VERSION": version}
    assert client.get(reverse("overview"), **live).status_code == 204
    Prebuild.objects.filter(pk=running.pk).update(phase=PrebuildPhase.COMPLETED, status_version=2)
    response = client.get(reverse("overview"), **live)
    assert response.status_code == 200 and 'id="active-count"' in response.content.decode()
    make_prebuild()  # a new one, even once all was finished
    assert client.get(reverse("overview"), **live).status_code == 200


def test_the_nav_counts_active_prebuilds(client, org, make_prebuild):
    make_prebuild(phase=PrebuildPhase.RUNNING)
    make_prebuild()
    make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    body = client.get(reverse("projects:list")).content.decode()
    assert '<span id="active-count" class="badge"><span class="visually-hidden">(</span>2' in body
