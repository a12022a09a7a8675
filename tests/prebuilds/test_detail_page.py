"""/prebuilds/<id>/: status first (the phases it really took, elapsed time against the previous run,
the timeout and whose it is, the failure leading to its lines), the timeline, the facts with the
internal ones behind a disclosure; confirmations; the status card's refresh; the raw log download
and the logs-token endpoint of the log panel."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard.templatetags.dashboard_ui import estimate_text
from prebuilds import logstore
from prebuilds.logtokens import logs_token_verify
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep

pytestmark = pytest.mark.django_db

STATUS = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "prebuild-status"}
HTMX = {"HTTP_HX_REQUEST": "true"}
FAILED, STOPPED = PrebuildStep.Outcome.FAILED, PrebuildStep.Outcome.STOPPED


def url(prebuild, name="detail"):
    return reverse(f"prebuilds:{name}", args=[prebuild.id])


def path_of(client, prebuild) -> list[tuple[str, str]]:
    """The phase stepper as (label, state), states as the page marks them."""
    body = client.get(url(prebuild)).content.decode()
    stepper = body[body.index('<ol class="phase-path"') : body.index("</ol>", body.index('<ol class="phase-path"'))]
    return [
        (label, note)
        for label, note in re.findall(
            r'<li class="[^"]*"[^>]*>([^<]+)<span class="visually-hidden"> \(([^)]+)\)', stepper
        )
    ]


def test_status_and_facts_with_the_internal_ones_behind_a_disclosure(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING, commit_id="0123456789abcdef")
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    # The status card and the log come first; the timeline and the facts after them.
    assert body.index('id="prebuild-status"') < body.index('id="logs"') < body.index('id="prebuild-timeline"')
    assert body.index('id="logs"') < body.index('id="prebuild-facts"')
    facts = body[body.index('id="prebuild-facts"') : body.index('<details class="internal">')]
    for text in ("Manual by bob", "Runner</dt><dd>local", "Sandbox on the host (bubblewrap)"):
        assert text in facts
    assert "Spec version" not in facts and "Status version" not in facts and "Desired phase" not in body
    internal = body[body.index('<details class="internal">') : body.index("</details>")]
    assert "<summary>Details</summary>" in internal
    for text in (str(prebuild.id), "0123456789ab", "Spec version", "Status version", "Log lines"):
        assert text in internal


def test_a_snapshot_image_and_the_runners_backend_are_shown(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED, snapshot_image="registry.local/snap@sha256:ab12")
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    assert '<dt>Snapshot image</dt><dd><code class="wrap">registry.local/snap@sha256:ab12</code>' in body
    assert '<dt>Runner</dt><dd>local <span class="muted">· Sandbox on the host (bubblewrap)' in body


def test_a_running_prebuild_shows_the_whole_path_with_its_place(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    assert path_of(client, prebuild) == [
        ("Pending", "passed"),
        ("Starting", "passed"),
        ("Running", "now"),
        ("Stopping", "not reached yet"),
        ("Snapshotting", "not reached yet"),
        ("Completed", "not reached yet"),
    ]
    assert '<li class="current" aria-current="step">Running' in client.get(url(prebuild)).content.decode()


def test_a_completed_prebuild_passed_every_phase(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    path = path_of(client, prebuild)
    assert [note for _, note in path] == ["passed"] * 5 + ["how it ended"]
    assert '<li class="done end" aria-current="step">Completed' in client.get(url(prebuild)).content.decode()


@pytest.mark.parametrize(
    ("phase", "started", "steps", "expected"),
    [
        # onCreateCommand failed: it ran, so Running was reached, and failed there; no Completed.
        (
            PrebuildPhase.FAILED,
            True,
            [("clone", None), ("onCreateCommand", FAILED)],
            [("Pending", "passed"), ("Starting", "passed"), ("Running", "failed here"), ("Failed", "how it ended")],
        ),
        # The container backend's steps run while RUNNING too; its build failed there.
        (
            PrebuildPhase.FAILED,
            True,
            [("clone", None), ("image", None), ("build", FAILED)],
            [("Pending", "passed"), ("Starting", "passed"), ("Running", "failed here"), ("Failed", "how it ended")],
        ),
        # The clone failed: Starting is where.
        (
            PrebuildPhase.FAILED,
            True,
            [("clone", FAILED)],
            [("Pending", "passed"), ("Starting", "failed here"), ("Failed", "how it ended")],
        ),
        # The snapshot failed: everything before it was passed.
        (
            PrebuildPhase.FAILED,
            True,
            [("clone", None), ("onCreateCommand", None), ("snapshot", FAILED)],
            [
                ("Pending", "passed"),
                ("Starting", "passed"),
                ("Running", "passed"),
                ("Stopping", "passed"),
                ("Snapshotting", "failed here"),
                ("Failed", "how it ended"),
            ],
        ),
        # Never started (the runner never claimed it): it failed while pending.
        (PrebuildPhase.FAILED, False, [], [("Pending", "failed here"), ("Failed", "how it ended")]),
        # Cancelled while its commands ran: stopped in Running.
        (
            PrebuildPhase.CANCELLED,
            True,
            [("clone", None), ("onCreateCommand", STOPPED)],
            [("Pending", "passed"), ("Starting", "passed"), ("Running", "stopped here"), ("Cancelled", "how it ended")],
        ),
        # Cancelled before it started.
        (PrebuildPhase.CANCELLED, False, [], [("Pending", "stopped here"), ("Cancelled", "how it ended")]),
        # Being cancelled: where it is now comes last.
        (
            PrebuildPhase.CANCELLING,
            True,
            [("clone", None), ("updateContentCommand", STOPPED)],
            [("Pending", "passed"), ("Starting", "passed"), ("Running", "stopped here"), ("Cancelling", "now")],
        ),
    ],
    ids=[
        "lifecycle",
        "container-build",
        "clone",
        "snapshot",
        "never-started",
        "cancelled",
        "cancelled-pending",
        "cancelling",
    ],
)
def test_the_stepper_shows_the_path_the_prebuild_really_took(
    client, org, make_prebuild, add_step, phase, started, steps, expected
):
    prebuild = make_prebuild(phase=phase, started_at=timezone.now() - timedelta(minutes=3) if started else None)
    for position, (name, outcome) in enumerate(steps):
        add_step(prebuild, position, name, 5, outcome=outcome or PrebuildStep.Outcome.SUCCEEDED)
    client.force_login(org.member)
    assert path_of(client, prebuild) == expected


def test_the_failure_leads_to_the_failing_steps_lines(client, org, make_prebuild, add_step):
    prebuild = make_prebuild(phase=PrebuildPhase.FAILED, failure_message="onCreateCommand exited with status 3")
    add_step(prebuild, 0, "clone", 2)
    add_step(prebuild, 1, "onCreateCommand", 9, outcome=FAILED, exit_status=3)
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    assert (
        'data-log-failure="onCreateCommand" data-log-lines="20">Show the failing lines of onCreateCommand</a>' in body
    )
    # A failure no step owns (a syntax error in devcontainer.json, say) leads to the log's last lines.
    other = make_prebuild(phase=PrebuildPhase.FAILED, failure_message="devcontainer.json: line 3: expected ','")
    body = client.get(url(other)).content.decode()
    assert 'data-log-failure="" data-log-lines="20">Show the failing lines</a>' in body


def test_elapsed_time_ticks_from_the_start_against_the_previous_completed_run(client, org, make_prebuild):
    previous = make_prebuild(phase=PrebuildPhase.COMPLETED)
    Prebuild.objects.filter(pk=previous.pk).update(completion_time=previous.started_at + timedelta(seconds=130))
    running = make_prebuild(phase=PrebuildPhase.RUNNING, started_at=timezone.now() - timedelta(seconds=65))
    client.force_login(org.member)
    body = client.get(url(running)).content.decode()
    line = re.search(r'<span class="ticking" data-since="([^"]+)" data-estimate="130">([^<]+)</span>', body)
    assert line and line.group(1) == running.started_at.isoformat()
    assert re.fullmatch(r"1m 0[5-9]s of about 2m 10s", line.group(2))
    assert ">0s<" not in body  # no frozen duration while it runs
    # On the list too: a count from the start, never the last status write.
    listing = client.get(reverse("prebuilds:list")).content.decode()
    assert f'data-since="{running.started_at.isoformat()}"' in listing


def test_a_run_longer_than_the_previous_one_says_so():
    assert estimate_text(timedelta(seconds=150), timedelta(seconds=130)) == (
        "2m 30s, longer than the previous run (2m 10s)"
    )


def test_the_timeout_says_whether_it_is_the_projects(client, org, make_prebuild):
    own = make_prebuild()  # the service's default: 1h, not the project's 30m
    client.force_login(org.member)
    body = client.get(url(own)).content.decode()
    muted = '<span class="muted">'
    assert f"Timeout 1h 00m {muted}(set for this run; the project's is 30m 00s)" in body
    Prebuild.objects.filter(pk=own.pk).update(timeout=timedelta(minutes=30))
    assert f"Timeout 30m 00s {muted}(the project's)" in client.get(url(own)).content.decode()


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
    # A step this run has jumps to its lines in the log; one it never ran is plain text.
    assert '<a href="#logs" data-log-step="onCreateCommand">onCreateCommand</a>' in body
    assert '<th scope="row">snapshot</th>' in body


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


def test_times_carry_their_absolute_moment_with_the_time_zone(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED)
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    created = prebuild.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f'title="{created}" data-relative><span class="rel">just now</span>' in body
    assert f'<span class="visually-hidden"> ({created})</span>' in body


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


def test_cancel_asks_first_then_cancels(client, org, make_prebuild):
    running = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    asked = client.post(url(running, "cancel"), **STATUS)
    body = asked.content.decode()
    assert asked["HX-Retarget"] == "#confirm-dialog" and "Cancel this prebuild?" in body
    assert "app on small, created " in body and "what it built so far is not kept" in body
    assert "Keep it running</button>" in body
    running.refresh_from_db()
    assert running.desired_phase == PrebuildPhase.UNSPECIFIED  # asking is not cancelling
    response = client.post(url(running, "cancel"), {"confirmed": "yes"}, **STATUS)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Cancellation requested" in body and "Cancel prebuild" not in body
    running.refresh_from_db()
    assert running.desired_phase == PrebuildPhase.CANCELLED
    pending = make_prebuild()
    asked = client.post(url(pending, "cancel")).content.decode()  # without JavaScript: a page
    assert '<h1 id="confirm-title">Cancel this prebuild?</h1>' in asked and "taken off the runner" in asked
    response = client.post(url(pending, "cancel"), {"confirmed": "yes"})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.phase == PrebuildPhase.CANCELLED


def test_delete_is_refused_to_members_and_done_for_admins_after_confirming(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED, snapshot_size_bytes=700 * 1024**2)
    client.force_login(org.member)
    response = client.post(url(prebuild, "delete"), {"confirmed": "yes"})
    assert response.status_code == 403
    assert "Only organization admins may delete prebuilds." in response.content.decode()
    client.force_login(org.admin)
    asked = client.post(url(prebuild, "delete"), **HTMX).content.decode()
    assert "Delete this prebuild?" in asked and "Its snapshot (700.0 MB) and its logs are removed" in asked
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.COMPLETED
    response = client.post(url(prebuild, "delete"), {"confirmed": "yes"}, **HTMX)
    assert response["HX-Redirect"] == reverse("prebuilds:list")
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.DELETING


def test_actions_on_foreign_prebuilds_are_not_found(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.outsider)
    assert client.post(url(prebuild, "cancel")).status_code == 404
    assert client.post(url(prebuild, "delete")).status_code == 404
    assert client.get(url(prebuild, "cancel")).status_code in (404, 405)
    assert client.get(url(prebuild, "log-download")).status_code == 404


def test_status_refreshes_with_the_log_and_answers_286_once_terminal(client, org, make_prebuild):
    prebuild = make_prebuild(phase=PrebuildPhase.RUNNING)
    client.force_login(org.member)
    page = client.get(url(prebuild)).content.decode()
    # The log panel triggers "prebuild-status" when a log answer carries a newer status version.
    assert 'data-status-version="1"' in page
    assert 'hx-trigger="prebuild-status from:body, every 10s, page-visible from:body"' in page
    response = client.get(url(prebuild), **STATUS)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.strip().startswith('<section class="card status-card" id="prebuild-status"')
    # The timeline and the facts come along out of band (they sit below the log).
    assert 'id="prebuild-timeline" aria-labelledby="timeline-heading" hx-swap-oob="true"' in body
    assert 'id="prebuild-facts" hx-swap-oob="true"' in body and 'id="prebuild-internal" hx-swap-oob="true"' in body
    Prebuild.objects.filter(pk=prebuild.pk).update(phase=PrebuildPhase.COMPLETED)
    response = client.get(url(prebuild), **STATUS)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode().split("</h2>")[0]
    # Deleted while polled: it says so and stops.
    Prebuild.objects.filter(pk=prebuild.pk).update(phase=PrebuildPhase.DELETED)
    response = client.get(url(prebuild), **STATUS)
    assert response.status_code == 286 and "has been deleted" in response.content.decode()
    assert client.get(url(prebuild)).status_code == 404


# --- the raw log ------------------------------------------------------------------------------------


@pytest.mark.parametrize("archived", [False, True], ids=["live", "archived"])
def test_the_raw_log_streams_every_line_as_text(client, org, make_prebuild, archived):
    prebuild = make_prebuild(phase=PrebuildPhase.COMPLETED if archived else PrebuildPhase.RUNNING)
    lines = [("onCreateCommand", "stdout", f"line {i} \x1b[32mok\x1b[0m") for i in range(3000)]
    seq = 1
    for start in range(0, 3000, 1000):
        seq = logstore.append(prebuild.id, seq, lines[start : start + 1000])
    if archived:
        logstore.archive(prebuild)
    client.force_login(org.member)
    response = client.get(url(prebuild, "log-download"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="prebuild-{prebuild.id}.log"'
    text = b"".join(response.streaming_content).decode()
    assert text.splitlines() == [line for _, _, line in lines]
    body = client.get(url(prebuild)).content.decode()
    assert f'href="{url(prebuild, "log-download")}" download>Download raw log</a>' in body


def test_the_raw_log_needs_a_session(client, org, make_prebuild):
    prebuild = make_prebuild()
    response = client.get(url(prebuild, "log-download"))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- log panel -------------------------------------------------------------------------------------


def test_log_panel_is_named_and_configured_by_data_attributes(client, org, make_prebuild):
    prebuild = make_prebuild()
    client.force_login(org.member)
    body = client.get(url(prebuild)).content.decode()
    assert 'aria-labelledby="logs-heading" id="logs"' in body and '<h2 id="logs-heading">Logs</h2>' in body
    assert f'data-token-url="{url(prebuild, "logs-token")}"' in body
    assert f'data-logs-url="/logs/{prebuild.id}"' in body
    assert '<script src="/static/js/logs.js" defer></script>' in body
    assert 'role="search" aria-label="Search the log"' in body


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
