"""/projects/, /projects/new/ and /projects/<id>/: create, edit and delete (admins), every field's
error at once in a person's words, a save that would delete pools asking first, the trigger form,
the duration chart with its axis, and the pools."""

from datetime import timedelta

import pytest
from django.urls import reverse

from prebuilds.models import Prebuild, PrebuildPhase
from projects.models import Project

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def detail(project):
    return reverse("projects:detail", args=[project.id])


def valid(org, **changes):
    data = {
        "name": "app",
        "repository_url": "/srv/git/app",
        "branch": "main",
        "devcontainer_path": ".devcontainer/devcontainer.json",
        "default_environment_class": str(org.small.id),
        "prebuilds_enabled": "on",
        "prebuild_environment_classes": [str(org.small.id), str(org.large.id)],
        "prebuild_timeout": "30m",
        "daily_schedule_hour_utc": "",
        "executor": "",
        "webhook_url": "",
    }
    data.update(changes)
    return data


def test_list_shows_the_configuration_of_the_current_organizations_projects(client, org):
    client.force_login(org.member)
    body = client.get("/projects/").content.decode()
    assert detail(org.project) in body and "large, small" in body and "30m 00s" in body and "Enabled" in body


def test_list_runs_a_constant_number_of_queries(client, org, django_assert_num_queries):
    from projects import services as project_services

    client.force_login(org.member)
    client.get("/projects/")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        client.get("/projects/")
    for i in range(5):
        project_services.project_create(
            actor=org.admin,
            organization=org.organization,
            name=f"p{i}",
            repository_url="/srv/git/p",
            prebuild_environment_class_ids=[org.small.id, org.large.id],
        )
    with django_assert_num_queries(len(one)):
        assert len(client.get("/projects/").context["projects"]) == 6


def test_members_see_the_configuration_read_only(client, org):
    client.force_login(org.member)
    body = client.get(detail(org.project)).content.decode()
    assert "Only organization admins edit the project." in body
    assert ">Save</button>" not in body and "Delete project" not in body and "New project" not in body
    response = client.post(detail(org.project), valid(org, prebuild_timeout="45m"))
    assert response.status_code == 403
    org.project.refresh_from_db()
    assert org.project.prebuild_timeout == timedelta(minutes=30)


def test_admin_edits_the_configuration(client, org):
    client.force_login(org.admin)
    body = client.get(detail(org.project)).content.decode()
    for label in ("Repository", "Branch", "Access token", "Prebuilds enabled", "Timeout", "Executor"):
        assert label in body
    response = client.post(
        detail(org.project),
        valid(
            org,
            confirmed="yes",  # small's pool, if it had one, would go
            prebuild_environment_classes=[str(org.large.id)],
            prebuild_timeout="1h30m",
            daily_schedule_hour_utc="4",
            executor=str(org.member.id),
            webhook_url="https://hooks.example/x",
        ),
        **HTMX,
    )
    assert response.status_code == 200 and "Saved." in response.content.decode()
    project = Project.objects.get(pk=org.project.pk)
    assert project.prebuild_timeout == timedelta(hours=1, minutes=30)
    assert project.daily_schedule_hour_utc == 4 and project.executor == org.member
    assert project.webhook_url == "https://hooks.example/x"
    assert list(project.prebuild_environment_classes.all()) == [org.large]
    response = client.post(detail(org.project), valid(org))
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"prebuild_timeout": "3m"}, "prebuild_timeout", "Enter a timeout from 5 minutes to 2 hours"),
        ({"prebuild_timeout": "3h"}, "prebuild_timeout", "Enter a timeout from 5 minutes to 2 hours"),
        ({"prebuild_timeout": "later"}, "prebuild_timeout", "Enter minutes or a duration such as 30m or 1h."),
        ({"prebuild_timeout": ""}, "prebuild_timeout", "Enter a timeout from 5 minutes to 2 hours"),
        (
            {"daily_schedule_hour_utc": "24"},
            "daily_schedule_hour_utc",
            "Enter an hour from 0 to 23, or leave it empty.",
        ),
        ({"webhook_url": "ftp://x"}, "webhook_url", "Enter an https:// (or http://) URL, or leave it empty."),
        ({"name": " "}, "name", "Enter a name for the project."),
        ({"branch": "my branch"}, "branch", "Enter a branch name without spaces, such as main."),
        ({"devcontainer_path": "../x.json"}, "devcontainer_path", "Enter a path inside the repository"),
    ],
)
def test_configuration_errors_are_a_persons_words_next_to_the_field(client, org, changes, field, message):
    client.force_login(org.admin)
    response = client.post(detail(org.project), valid(org, **changes), **HTMX)
    errors = response.context["form"].errors
    assert any(message in e for e in errors[field]), errors
    assert f'id="id_{field}_error"' in response.content.decode()
    assert Project.objects.get(pk=org.project.pk).prebuild_timeout == timedelta(minutes=30)


def test_every_fields_error_shows_at_once_and_the_inputs_carry_their_limits(client, org):
    client.force_login(org.admin)
    page = client.get(detail(org.project)).content.decode()
    assert 'name="daily_schedule_hour_utc" min="0" max="23"' in page and 'maxlength="200"' in page
    bad = valid(org, name="", prebuild_timeout="3h", daily_schedule_hour_utc="99", webhook_url="ftp://x")
    response = client.post(detail(org.project), bad, **HTMX)
    errors = response.context["form"].errors
    assert set(errors) == {"name", "prebuild_timeout", "daily_schedule_hour_utc", "webhook_url"}
    assert "Nothing was saved: 4 fields need a change, marked below." in response.content.decode()


def test_an_admin_creates_a_project_and_sees_its_webhook_secret_once(client, org):
    client.force_login(org.member)
    assert client.get(reverse("projects:create")).status_code == 403
    assert "New project" not in client.get("/projects/").content.decode()
    client.force_login(org.admin)
    assert f'href="{reverse("projects:create")}">New project</a>' in client.get("/projects/").content.decode()
    response = client.post(
        reverse("projects:create"),
        valid(org, name="api", repository_url="https://git.example/api.git", prebuild_timeout="10m"),
    )
    assert response.status_code == 200
    project = Project.objects.get(name="api")
    assert project.organization == org.organization and project.prebuild_timeout == timedelta(minutes=10)
    assert list(project.prebuild_environment_classes.order_by("display_name")) == [org.large, org.small]
    body = response.content.decode()
    assert "Project api created" in body and 'data-copy="webhook-secret">Copy</button>' in body
    assert 'value="whsec_' in body


def test_create_shows_every_error_and_the_services_own(client, org):
    client.force_login(org.admin)
    response = client.post(reverse("projects:create"), valid(org, name="app", prebuild_timeout="1m"))
    errors = response.context["form"].errors
    assert "Enter a timeout from 5 minutes to 2 hours" in errors["prebuild_timeout"][0]
    response = client.post(reverse("projects:create"), valid(org, name="app"))
    assert response.context["form"].errors["name"] == ["a project named 'app' already exists"]
    assert Project.objects.count() == 1


def test_the_access_token_is_never_shown_and_kept_unless_replaced_or_removed(client, org):
    org.project.access_token = "ghp_secret"
    org.project.save()
    client.force_login(org.admin)
    page = client.get(detail(org.project)).content.decode()
    assert "ghp_secret" not in page and "Remove the access token" in page
    client.post(detail(org.project), valid(org, access_token=""))
    assert Project.objects.get(pk=org.project.pk).access_token == "ghp_secret"
    client.post(detail(org.project), valid(org, access_token="ghp_new"))
    assert Project.objects.get(pk=org.project.pk).access_token == "ghp_new"
    client.post(detail(org.project), valid(org, clear_access_token="on"))
    assert Project.objects.get(pk=org.project.pk).access_token == ""


def test_a_save_that_deletes_a_pool_says_so_before_and_asks(client, org, make_pool, django_capture_on_commit_callbacks):
    from warmpools.models import WarmPool, WarmPoolPhase

    pool = make_pool(running_instances=2, stopped_instances=1)
    client.force_login(org.admin)
    page = client.get(detail(org.project)).content.decode()
    assert "With a warm pool: small. Unticking such a class, or disabling prebuilds, deletes its pool" in page
    untick = valid(org, prebuild_environment_classes=[str(org.large.id)])
    asked = client.post(detail(org.project), untick, **HTMX)
    body = asked.content.decode()
    assert asked["HX-Retarget"] == "#confirm-dialog" and "Save and delete a warm pool?" in body
    assert "The warm pool of app on small (2 running, 1 stopped instances)" in body
    assert f'name="prebuild_environment_classes" value="{org.large.id}"' in body  # the whole form, posted again
    assert list(Project.objects.get(pk=org.project.pk).prebuild_environment_classes.order_by("display_name")) == [
        org.large,
        org.small,
    ]  # nothing saved yet
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(detail(org.project), {**untick, "confirmed": "yes"}, **HTMX)
    assert "Saved. The warm pool of small is being deleted." in response.content.decode()
    assert WarmPool.objects.get(pk=pool.pk).desired_phase == WarmPoolPhase.DELETED
    # A save that deletes nothing asks nothing.
    response = client.post(detail(org.project), valid(org, prebuild_timeout="40m"), **HTMX)
    assert "Saved." in response.content.decode()


def test_an_admin_deletes_a_project_after_a_confirmation_naming_what_goes(client, org, make_pool, make_prebuild):
    make_pool()
    make_prebuild()
    client.force_login(org.member)
    assert client.post(reverse("projects:delete", args=[org.project.id])).status_code == 403
    client.force_login(org.admin)
    asked = client.post(reverse("projects:delete", args=[org.project.id]), **HTMX).content.decode()
    assert "Delete project app?" in asked and "The warm pool on small" in asked and "its 1 prebuild stay" in asked
    assert Project.objects.alive().filter(pk=org.project.pk).exists()
    response = client.post(reverse("projects:delete", args=[org.project.id]), {"confirmed": "yes"}, **HTMX)
    assert response["HX-Redirect"] == "/projects/"
    assert not Project.objects.alive().filter(pk=org.project.pk).exists()


def test_rotating_the_webhook_secret_asks_first(client, org):
    client.force_login(org.admin)
    nonce = org.project.webhook_secret_nonce
    asked = client.post(reverse("projects:webhook-secret", args=[org.project.id])).content.decode()
    assert "Rotate the webhook secret?" in asked and "stops signing at once" in asked
    assert Project.objects.get(pk=org.project.pk).webhook_secret_nonce == nonce
    done = client.post(reverse("projects:webhook-secret", args=[org.project.id]), {"confirmed": "yes"})
    assert "New webhook secret" in done.content.decode()
    assert Project.objects.get(pk=org.project.pk).webhook_secret_nonce != nonce


def test_the_project_page_triggers_a_prebuild_of_the_project(client, org):
    client.force_login(org.member)
    page = client.get(detail(org.project)).content.decode()
    assert f'hx-get="{reverse("prebuilds:project-trigger", args=[org.project.id])}" hx-trigger="load"' in page
    form = client.get(reverse("prebuilds:project-trigger", args=[org.project.id]), **HTMX).content.decode()
    assert f'name="project" value="{org.project.id}"' in form and "small (default)" in form
    assert "Empty: the project&#x27;s timeout, 30m." in form
    response = client.post("/prebuilds/", {"project": org.project.id, "from": "project", "timeout": "3h"}, **HTMX)
    assert response.content.decode().strip().startswith('<form id="project-trigger-form"')
    assert "Enter a timeout from 5 minutes to 2 hours" in response.content.decode()
    response = client.post("/prebuilds/", {"project": org.project.id, "from": "project"}, **HTMX)
    from prebuilds.models import Prebuild

    prebuild = Prebuild.objects.get()
    assert response["HX-Redirect"] == reverse("prebuilds:detail", args=[prebuild.id])
    assert prebuild.timeout == timedelta(minutes=30)  # the project's


def test_chart_shows_recent_prebuilds_coloured_by_outcome(client, org, make_prebuild):
    make_prebuild(phase=PrebuildPhase.COMPLETED)
    failed = make_prebuild(phase=PrebuildPhase.FAILED)
    Prebuild.objects.filter(pk=failed.pk).update(completion_time=failed.started_at + timedelta(seconds=60))
    make_prebuild(phase=PrebuildPhase.CANCELLED)
    make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    body = client.get(detail(org.project)).content.decode()
    for outcome in ("bar-ok", "bar-bad", "bar-off", "bar-live"):
        assert f"bar {outcome}" in body
    assert "Duration of the last 4 prebuilds" in body
    # Each bar is a link named in words; no link sits inside an SVG.
    assert f'<a class="chart-bar" href="{reverse("prebuilds:detail", args=[failed.id])}"' in body
    assert "<svg" in body and "<a " not in "".join(body.split("<svg")[1:]).split("</svg>")[0]
    assert '<span class="visually-hidden">Failed, 1m 00s, small, ' in body
    # The time axis: a round top at least the longest run (3m, the running one's so far), its half, 0.
    assert '<div class="chart-y" aria-hidden="true"><span>5m 00s</span><span>2m 30s</span><span>0s</span></div>' in body


def test_detail_lists_the_projects_pools(client, org, make_pool):
    pool = make_pool()
    client.force_login(org.member)
    body = client.get(detail(org.project)).content.decode()
    assert reverse("warmpools:detail", args=[pool.id]) in body and 'role="img"' in body
    assert ">app / small</a>" in body  # by its name
