"""/projects/ and /projects/<id>/: configuration (admins edit), the duration chart and the pools."""

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
    assert "Only organization admins edit the configuration." in body
    assert "Save configuration" not in body
    response = client.post(detail(org.project), valid(org, prebuild_timeout="45m"))
    assert response.status_code == 403
    org.project.refresh_from_db()
    assert org.project.prebuild_timeout == timedelta(minutes=30)


def test_admin_edits_the_configuration(client, org):
    client.force_login(org.admin)
    body = client.get(detail(org.project)).content.decode()
    for label in ("Prebuilds enabled", "Environment classes", "Timeout", "Daily prebuild at (hour, UTC)", "Executor"):
        assert label in body
    response = client.post(
        detail(org.project),
        valid(
            org,
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
        ({"prebuild_timeout": "3m"}, "prebuild_timeout", "timeout must be between 5 minutes and 2 hours"),
        ({"prebuild_timeout": "3h"}, "prebuild_timeout", "timeout must be between 5 minutes and 2 hours"),
        ({"prebuild_timeout": "later"}, "prebuild_timeout", "Enter minutes or a duration such as 30m or 1h."),
        ({"prebuild_timeout": ""}, "prebuild_timeout", "timeout must be a duration"),
        ({"daily_schedule_hour_utc": "24"}, "daily_schedule_hour_utc", "daily schedule hour must be between 0 and 23"),
        ({"webhook_url": "ftp://x"}, "webhook_url", "webhook_url must be an http(s) URL"),
    ],
)
def test_configuration_errors_are_the_services_messages(client, org, changes, field, message):
    client.force_login(org.admin)
    response = client.post(detail(org.project), valid(org, **changes), **HTMX)
    errors = response.context["form"].errors
    assert any(message in e for e in errors[field]), errors
    assert f'id="id_{field}_error"' in response.content.decode()
    assert Project.objects.get(pk=org.project.pk).prebuild_timeout == timedelta(minutes=30)


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
    assert reverse("prebuilds:detail", args=[failed.id]) in body


def test_detail_lists_the_projects_pools(client, org, make_pool):
    pool = make_pool()
    client.force_login(org.member)
    body = client.get(detail(org.project)).content.decode()
    assert reverse("warmpools:detail", args=[pool.id]) in body and 'role="img"' in body
