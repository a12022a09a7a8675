"""The worker's reporter (prebuilds/execution.py) writes what the runner reports through
prebuilds/status.py, and answers the runner's "should I stop?" with a StopReason."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from prebuilds import execution, logstore, services, status
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep
from projects import services as project_services
from runner.errors import StopReason
from runner.executor import PrebuildOutcome, PrebuildResult
from runner.lifecycle import StepEvent

pytestmark = pytest.mark.django_db

P = PrebuildPhase
T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@pytest.fixture
def running(org):
    prebuild = status.prebuild_claim(prebuild_id=services.prebuild_create(actor=org.member, project=org.project).id)
    return status.prebuild_set_status(prebuild=prebuild, phase=P.RUNNING)


def test_a_heartbeat_is_written_without_a_status_version(running, time_machine):
    time_machine.move_to(T0 + timedelta(minutes=7), tick=False)
    execution.DatabaseReporter(running).heartbeat()
    current = Prebuild.objects.get(id=running.id)
    assert current.heartbeat_at == T0 + timedelta(minutes=7)
    assert current.status_version == running.status_version


def test_steps_keep_one_row_each_in_the_order_they_started(running):
    reporter = execution.DatabaseReporter(running)
    reporter.step(StepEvent("clone", "running", T0))
    reporter.step(StepEvent("onCreateCommand", "running", T0 + timedelta(seconds=5)))
    reporter.step(StepEvent("clone", "succeeded", T0, T0 + timedelta(seconds=4)))
    steps = [(s.position, s.name, s.outcome, s.ended_at) for s in PrebuildStep.objects.filter(prebuild=running)]
    assert steps == [(0, "clone", "succeeded", T0 + timedelta(seconds=4)), (1, "onCreateCommand", "running", None)]


def test_step_reports_refuse_unknown_fields(running):
    with pytest.raises(ValueError):
        status.prebuild_step_report(prebuild_id=running.id, name="clone", position=0, phase=P.FAILED)


def test_a_cancel_stops_the_run_and_shows_cancelling(org, running):
    reporter = execution.DatabaseReporter(running)
    services.prebuild_cancel(actor=org.member, prebuild=running)
    assert reporter.should_stop() == StopReason.CANCELLED
    assert Prebuild.objects.get(id=running.id).phase == P.CANCELLING
    execution.finish(reporter.prebuild, PrebuildOutcome(PrebuildResult.CANCELLED), reporter.stop_reason)
    assert Prebuild.objects.get(id=running.id).phase == P.CANCELLED


def test_a_run_the_reaper_took_stops_as_runner_lost_and_keeps_the_reapers_word(running):
    reporter = execution.DatabaseReporter(running)
    reapers_copy = Prebuild.objects.get(id=running.id)  # the reaper reads its own row
    status.prebuild_set_status(prebuild=reapers_copy, phase=P.FAILED, failure_message="runner lost: no heartbeat")
    reporter.phase("STOPPING")  # refused: the prebuild moved on under the reporter
    assert reporter.should_stop() == StopReason.RUNNER_LOST
    execution.finish(
        reporter.prebuild, PrebuildOutcome(PrebuildResult.CANCELLED, "stopped: runner lost"), reporter.stop_reason
    )
    current = Prebuild.objects.get(id=running.id)
    assert (current.phase, current.failure_message) == (P.FAILED, "runner lost: no heartbeat")


def test_a_deleted_prebuild_loses_its_steps(org, add_step):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    add_step(prebuild, 0, "clone", 3)
    prebuild = services.prebuild_delete(actor=org.admin, prebuild=prebuild)
    execution.delete(str(prebuild.id))
    current = Prebuild.objects.get(id=prebuild.id)
    assert current.phase == P.DELETED
    assert not PrebuildStep.objects.filter(prebuild=prebuild).exists()


SECRET_VALUE = "reporter-secret-Value+/="


def test_secret_values_are_masked_in_stored_lines_and_in_the_failure_message(running):
    reporter = execution.DatabaseReporter(running, [SECRET_VALUE])
    reporter.logs([("onCreateCommand", "stdout", f"token={SECRET_VALUE}"), ("onCreateCommand", "stderr", "plain")])
    reporter.flush()
    texts = [line.text for line in logstore.read(running, after=0, limit=100).lines]
    assert texts == ["token=***", "plain"]
    outcome = PrebuildOutcome(PrebuildResult.FAILED, f"onCreateCommand failed: {SECRET_VALUE}", f"warn {SECRET_VALUE}")
    execution.finish(reporter.prebuild, outcome, None, mask=reporter.mask)
    prebuild = Prebuild.objects.get(pk=running.pk)
    assert prebuild.phase == PrebuildPhase.FAILED
    assert prebuild.failure_message == "onCreateCommand failed: ***"
    assert prebuild.warning_message == "warn ***"


def test_a_prebuild_whose_secrets_no_key_opens_fails_at_once(org, settings):
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    project_services.secret_set(actor=org.admin, project=org.project, name="TOKEN", value=SECRET_VALUE)
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key is gone
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    execution.execute(str(prebuild.id))
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.FAILED
    assert "SECRETS_ENCRYPTION_KEYS" in prebuild.failure_message
