"""/prebuilds/<id>/: metadata, spec, status, timeline against the previous run, actions, the
status partial's polling, and the logs-token endpoint of the log panel."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from prebuilds.logtokens import logs_token_verify
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep

pytestmark = pytest.mark.django_db

STATUS = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "prebuild-status"}


def url(prebuild, name="detail"):
    return reverse(f"prebuilds:{name}", args=[prebuild.id])


def test_shows_metadata_spec_and_status(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING, commit_id="0123456789abcdef")
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    for text in ("Metadata", "Spec", "Status", str(prebuild.id), "Manual", "bob", "1h 00m", "0123456789ab"):
        assert text in body
    assert '<li class="current" aria-current="step">Running</li>' in body
    assert '<li class="done">Starting</li>' in body


@pytest.mark.parametrize(
    "started, done",
    [(True, ["Pending", "Starting"]), (False, ["Pending"])],
    ids=["started", "never-started"],
)
def test_a_run_that_left_the_path_ends_it_with_its_phase(client, org, make_prebuild, started, done):
    prebuild = make_prebuild(phase=PrebuildPhase.FAILED, started_at=prebuild_start() if started else None)
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    path = body[body.index('<ol class="phase-path"') : body.index("</ol>")]
    assert [label for label in ("Pending", "Starting", "Running") if f'<li class="done">{label}</li>' in path] == done
    assert path.rstrip().endswith('<li class="current" aria-current="step">Failed</li>')


def prebuild_start():
    return timezone.now() - timedelta(minutes=3)


def test_timeline_shows_step_durations_next_to_the_previous_completed_run(client, org, make_prebuild, add_step):
    previous = make_prebuild(phase=PrebuildPhase.COMPLETED)
    add_step(previous, 0, "clone", 4)
    add_step(previous, 1, "onCreateCommand", 100)
    add_step(previous, 2, "snapshot", 30)
    other_class = make_prebuild(environment_class=org.large, phase=PrebuildPhase.COMPLETED)
    add_step(other_class, 0, "clone", 999)
    current = make_prebuild(phase=PrebuildPhase.RUNNING)
    add_step(current, 0, "clone", 5)
    add_step(current, 1, "onCreateCommand", 200, outcome=PrebuildStep.Outcome.FAILED, exit_status=2)
    client.force_login(org.member)
    response = client.get(url(current))
    assert response.context["previous"] == previous
    rows = {row["name"]: row for row in response.context["timeline"]}
    assert list(rows) == ["clone", "onCreateCommand", "snapshot"]  # this run's steps, then the previous run's
    assert rows["onCreateCommand"]["width"] == 100.0 and rows["onCreateCommand"]["previous_width"] == 50.0
    assert rows["snapshot"]["step"] is None
    body = response.content.decode()
    assert "3m 20s" in body and "1m 40s" in body and "(exit 2)" in body and "not run" in body
    assert "16m 39s" not in body  # another class's run is not the comparison


def test_progress_bar_while_snapshotting_and_size_when_completed(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.SNAPSHOTTING, snapshot_completion_percentage=42)
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    assert '<progress id="snapshot-progress" max="100" value="42">' in body
    Prebuild.objects.filter(pk=prebuild.pk).update(
        phase=PrebuildPhase.COMPLETED, snapshot_completion_percentage=None, snapshot_size_bytes=3 * 1024**3
    )
    body = client.get(url(prebuild)).content.decode()
    assert "<progress" not in body and "3.0\xa0GB" in body


def test_warning_and_failure_messages_are_shown_escaped(client, org, make_prebuild):
    prebuild = make_prebuild(
        phase=PrebuildPhase.FAILED, failure_message="exit 1 in <script>", warning_message="image ignored"
    )
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    assert "exit 1 in &lt;script&gt;" in body and "image ignored" in body and 'role="alert"' in body


def test_buttons_follow_role_and_phase(client, org, make_prebuild):
    running = make_prebuild(phase=PrebuildPhase.RUNNING)
    done = make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    body = client.get(url(running)).content.decode()
    assert "Cancel prebuild" in body and "Delete prebuild" not in body
    assert "Cancel prebuild" not in client.get(url(done)).content.decode()
    client.force_login(org.admin)
    body = client.get(url(done)).content.decode()
    assert "Delete prebuild" in body and "Cancel prebuild" not in body


def test_member_cancels(client, org, make_prebuild):
    running = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    response = client.post(url(running, "cancel"), **STATUS)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Cancellation requested" in body and "Cancel prebuild" not in body
    running.refresh_from_db()
    assert running.desired_phase == PrebuildPhase.CANCELLED
    pending = make_prebuild()
    response = client.post(url(pending, "cancel"))
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.phase == PrebuildPhase.CANCELLED


def test_delete_is_refused_to_members_and_done_for_admins(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    response = client.post(url(prebuild, "delete"))
    assert response.status_code == 403
    assert "Only organization admins may delete prebuilds." in response.content.decode()
    client.force_login(org.admin)
    response = client.post(url(prebuild, "delete"), HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("prebuilds:list")
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.DELETING


def test_actions_on_foreign_prebuilds_are_not_found(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.outsider)
    assert client.post(url(prebuild, "cancel")).status_code == 404
    assert client.post(url(prebuild, "delete")).status_code == 404
    assert client.get(url(prebuild, "cancel")).status_code in (404, 405)


def test_status_polls_while_running_and_answers_286_once_terminal(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    assert 'hx-trigger="every 2s"' in client.get(url(prebuild)).content.decode()
    response = client.get(url(prebuild), **STATUS)
    assert response.status_code == 200
    assert response.content.decode().strip().startswith('<div id="prebuild-status"')
    Prebuild.objects.filter(pk=prebuild.pk).update(phase=PrebuildPhase.COMPLETED)
    response = client.get(url(prebuild), **STATUS)
    assert response.status_code == 286
    assert 'hx-trigger="every 2s"' not in response.content.decode()
    # Deleted while polled: it says so and stops.
    Prebuild.objects.filter(pk=prebuild.pk).update(phase=PrebuildPhase.DELETED)
    response = client.get(url(prebuild), **STATUS)
    assert response.status_code == 286 and "has been deleted" in response.content.decode()
    assert client.get(url(prebuild)).status_code == 404


# --- log panel -------------------------------------------------------------------------------------


def test_log_panel_is_named_and_configured_by_data_attributes(client, org, make_prebuild):
    prebuild = make_prebuild()
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    assert 'aria-label="Logs"' in body
    assert f'data-token-url="{url(prebuild, "logs-token")}"' in body
    assert f'data-logs-url="/logs/{prebuild.id}"' in body
    assert '<script src="/static/js/logs.js" defer></script>' in body


def test_logs_token_for_members_only(client, org, make_prebuild):
    prebuild = make_prebuild()
    token_url = url(prebuild, "logs-token")
    response = client.post(token_url)
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    client.force_login(org.outsider)
    assert client.post(token_url).status_code == 404
    client.force_login(org.member)
    assert client.get(token_url).status_code == 405
    response = client.post(token_url)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["expiresIn"] == 3600
    logs_token_verify(body["token"], prebuild_id=prebuild.id)  # reads this prebuild's logs


def test_logs_token_needs_the_csrf_header(org, make_prebuild):
    from django.test import Client

    prebuild = make_prebuild()
    client = Client(enforce_csrf_checks=True)
    client.force_login(org.member)
    assert client.post(url(prebuild, "logs-token")).status_code == 403
    page = client.get(url(prebuild))
    token = page.context["csrf_token"]
    assert client.post(url(prebuild, "logs-token"), HTTP_X_CSRFTOKEN=str(token)).status_code == 200
