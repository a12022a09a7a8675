"""Schedules, retention, the reaper's bookkeeping and failure alerts (no worker needed: these are
the control plane's own decisions).

Each decision is given its clock (`now`), and the wall clock is frozen elsewhere, a month after
the scheduled day: a decision that read the wall clock instead of its `now` (or wrote a row's time
from it) shows here, on any day the suite runs."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from celery import current_app
from django.test import TestCase

from prebuilds import maintenance, services, status, tasks
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildTrigger, ScheduleState
from projects import services as project_services

pytestmark = pytest.mark.django_db

AT_THREE = datetime(2026, 11, 27, 3, 59, tzinfo=UTC)  # late enough in the hour for any spread offset
WALL = AT_THREE + timedelta(days=30)  # what timezone.now() says, unless a test moves it


@pytest.fixture(autouse=True)
def wall_clock(time_machine):
    time_machine.move_to(WALL, tick=False)
    return time_machine


@pytest.fixture
def scheduled(org):
    return project_services.project_update(
        actor=org.admin, project=org.project, daily_schedule_hour_utc=3, executor_id=org.member.id
    )


def finish(prebuild, phase, message=""):
    prebuild = status.prebuild_claim(prebuild_id=prebuild.id)
    if phase == PrebuildPhase.COMPLETED:
        for step in (PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
            prebuild = status.prebuild_set_status(prebuild=prebuild, phase=step)
    prebuild = status.prebuild_set_status(prebuild=prebuild, phase=phase, failure_message=message)
    status.prebuild_finished(prebuild=prebuild)
    return prebuild


def test_the_daily_schedule_starts_one_prebuild_per_enabled_class(org, scheduled):
    created = maintenance.schedule_prebuilds(now=AT_THREE)
    assert {p.environment_class for p in created} == {org.small, org.large}
    for prebuild in created:
        assert prebuild.triggered_by == PrebuildTrigger.SCHEDULED
        assert prebuild.creator == org.member == prebuild.executor
        assert prebuild.timeout == scheduled.prebuild_timeout
        # Stamped with the scheduler's clock, which the next pass compares with.
        assert Prebuild.objects.get(id=prebuild.id).created_at == AT_THREE
    # The next pass in the same hour adds nothing; the same hour a day later starts the pair again.
    assert maintenance.schedule_prebuilds(now=AT_THREE + timedelta(seconds=30)) == []
    for prebuild in created:
        finish(prebuild, PrebuildPhase.COMPLETED)
    tomorrow = maintenance.schedule_prebuilds(now=AT_THREE + timedelta(days=1))
    assert {p.environment_class for p in tomorrow} == {org.small, org.large}


def test_no_schedule_outside_its_hour_or_when_disabled(org, scheduled):
    assert maintenance.schedule_prebuilds(now=AT_THREE.replace(hour=4)) == []
    project_services.project_update(actor=org.admin, project=scheduled, prebuilds_enabled=False)
    assert maintenance.schedule_prebuilds(now=AT_THREE) == []


def test_the_start_is_spread_over_the_first_minutes(org, scheduled):
    offsets = {maintenance.schedule_offset_minutes(scheduled.id, c.id) for c in (org.small, org.large)}
    assert all(0 <= o < 10 for o in offsets)
    early = maintenance.schedule_prebuilds(now=AT_THREE.replace(minute=min(offsets)))
    assert len(early) >= 1
    assert all(maintenance.schedule_offset_minutes(scheduled.id, p.environment_class_id) <= min(offsets) for p in early)


def test_none_added_while_one_of_the_pair_runs(org, scheduled):
    running = services.prebuild_create(actor=org.member, project=scheduled, environment_class_id=org.small.id)
    created = maintenance.schedule_prebuilds(now=AT_THREE)
    assert [p.environment_class for p in created] == [org.large]
    assert Prebuild.objects.filter(environment_class=org.small).get() == running


def test_three_failed_scheduled_prebuilds_pause_the_pair_until_a_manual_success(org, scheduled):
    for day in range(3):
        when = AT_THREE + timedelta(days=day)
        created = {p.environment_class: p for p in maintenance.schedule_prebuilds(now=when)}
        finish(created[org.small], PrebuildPhase.FAILED, "exit 3")
        finish(created[org.large], PrebuildPhase.COMPLETED)
    state = ScheduleState.objects.get(project=scheduled, environment_class=org.small)
    assert state.paused_at is not None
    assert "3 consecutive failures" in state.paused_reason and "exit 3" in state.paused_reason
    created = maintenance.schedule_prebuilds(now=AT_THREE + timedelta(days=3))
    assert [p.environment_class for p in created] == [org.large]  # the paused pair is skipped
    finish(created[0], PrebuildPhase.COMPLETED)

    manual = services.prebuild_create(actor=org.member, project=scheduled, environment_class_id=org.small.id)
    finish(manual, PrebuildPhase.COMPLETED)
    state.refresh_from_db()
    assert (state.paused_at, state.consecutive_failures, state.paused_reason) == (None, 0, "")
    created = maintenance.schedule_prebuilds(now=AT_THREE + timedelta(days=4))
    assert {p.environment_class for p in created} == {org.small, org.large}


def test_retention_keeps_the_newest_completed_prebuild_of_each_pair(org, wall_clock, settings):
    completed = [services.prebuild_create(actor=org.member, project=org.project) for _ in range(2)]
    for prebuild in completed:
        finish(prebuild, PrebuildPhase.COMPLETED)
    failed = finish(services.prebuild_create(actor=org.member, project=org.project), PrebuildPhase.FAILED, "x")
    expiry = WALL + settings.PREBUILD_RETENTION  # when the ones made so far reach the retention age
    wall_clock.move_to(expiry - timedelta(hours=1), tick=False)
    recent = finish(services.prebuild_create(actor=org.member, project=org.project), PrebuildPhase.FAILED, "y")
    assert maintenance.expire_prebuilds(now=expiry - timedelta(seconds=1)) == 0  # not old enough yet
    assert maintenance.expire_prebuilds(now=expiry + timedelta(seconds=1)) == 2
    phases = dict(Prebuild.objects.values_list("id", "phase"))
    newest = max(completed, key=lambda p: Prebuild.objects.get(id=p.id).completion_time)
    assert phases[newest.id] == PrebuildPhase.COMPLETED
    assert phases[failed.id] == PrebuildPhase.DELETING
    assert phases[recent.id] == PrebuildPhase.FAILED
    assert maintenance.expire_prebuilds(now=expiry + timedelta(seconds=1)) == 0


def test_reaper_finishes_a_cancel_that_raced_the_claim(org, settings):
    settings.PREBUILD_REQUEUE_AFTER = timedelta(0)
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    Prebuild.objects.filter(id=prebuild.id).update(desired_phase=PrebuildPhase.CANCELLED)
    maintenance.reap(now=WALL + timedelta(seconds=1))
    assert Prebuild.objects.get(id=prebuild.id).phase == PrebuildPhase.CANCELLED


def test_reaper_leaves_live_prebuilds_alone_and_fails_silent_ones(org, settings):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    status.prebuild_claim(prebuild_id=prebuild.id)  # its first heartbeat: now (WALL)
    silent_for = settings.PREBUILD_HEARTBEAT_TIMEOUT
    assert maintenance.reap(now=WALL + silent_for - timedelta(seconds=1))["lost"] == 0
    assert Prebuild.objects.get(id=prebuild.id).phase == PrebuildPhase.STARTING
    assert maintenance.reap(now=WALL + silent_for + timedelta(seconds=1))["lost"] == 1
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.FAILED and prebuild.failure_message.startswith("runner lost")


def test_a_failed_prebuild_posts_to_the_project_webhook(org, settings, sent_tasks):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # loopback is refused unless allowed by name
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    project = project_services.project_update(
        actor=org.admin, project=org.project, webhook_url=f"http://127.0.0.1:{server.server_port}/hook"
    )
    prebuild = services.prebuild_create(actor=org.member, project=project)
    with TestCase.captureOnCommitCallbacks(execute=True):
        finish(prebuild, PrebuildPhase.FAILED, "onCreateCommand exited with status 3")
    # Sent by name to the control queue; run as a worker would, by looking the name up.
    sent = sent_tasks("control")
    assert sent == [(tasks.send_failure_webhook.name, [str(prebuild.id)])]
    current_app.tasks[sent[0][0]](*sent[0][1])
    thread.join(timeout=5)
    server.server_close()
    assert received[0]["event"] == "prebuild.failed"
    assert received[0]["prebuild"]["id"] == str(prebuild.id)
    assert received[0]["prebuild"]["failureMessage"] == "onCreateCommand exited with status 3"


def test_reaper_resends_a_pending_prebuild_once_per_period_not_every_pass(org, settings):
    settings.PREBUILD_REQUEUE_AFTER = timedelta(minutes=2)
    services.prebuild_create(actor=org.member, project=org.project)  # created and sent at WALL
    assert maintenance.reap(now=WALL + timedelta(minutes=1))["requeued"] == 0  # sent a minute ago
    later = WALL + timedelta(minutes=10)
    assert maintenance.reap(now=later)["requeued"] == 1
    # Just sent (at the reaper's `later`): not again until the period has passed.
    assert maintenance.reap(now=later + timedelta(minutes=1))["requeued"] == 0
    assert maintenance.reap(now=later + timedelta(minutes=2, seconds=1))["requeued"] == 1
