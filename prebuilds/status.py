"""The only writer of a prebuild's status: its phase and status_version, and every field the
runner side reports (timings, messages, log URL, snapshot, commit, heartbeat, when its message was
sent), its steps, and the schedule's outcome record. Services write spec; the worker
(prebuilds/execution.py), the reaper (prebuilds/maintenance.py) and, for a prebuild no runner
owns, a service settle status here and nowhere else.

Every status write is compare-and-swap on status_version, except the two kinds of bookkeeping
that are not observed state a client reads (the heartbeat and when the message was sent): those
are single-column updates that leave status_version alone, so that versions count real changes.
"""

from __future__ import annotations

from datetime import datetime

import django.dispatch
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.paths import redact_paths
from core.versioning import cas_update
from prebuilds import dispatch, logstore
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase, PrebuildStep, PrebuildTrigger, ScheduleState
from prebuilds.phases import check_transition

# Sent (after commit) when a prebuild reaches COMPLETED; the warm pool side listens, so that this
# room stays ignorant of pools.
prebuild_completed = django.dispatch.Signal()

# Status fields the runner side may write, besides the phase.
STATUS_FIELDS = frozenset(
    {
        "completion_time",
        "failure_message",
        "warning_message",
        "log_url",
        "environment_id",
        "snapshot_completion_percentage",
        "snapshot_size_bytes",
        "started_at",
        "heartbeat_at",
        "commit_id",
        "snapshot_sha256",
        "snapshot_image",
    }
)


def prebuild_set_status(*, prebuild: Prebuild, phase: int | None = None, **fields) -> Prebuild:
    """The runner side's one way to write status: a legal phase transition (if any) and status
    fields, compare-and-swap on status_version. Raises FailedPrecondition for an illegal move."""
    unknown = set(fields) - STATUS_FIELDS
    if unknown:
        raise ValueError(f"not status fields: {sorted(unknown)}")
    for message in ("failure_message", "warning_message"):
        if message in fields:
            # The runner's messages name its folders (workspace, snapshot store): callers see the
            # place, not the host path.
            fields[message] = redact_paths(fields[message])

    def mutate(current: Prebuild):
        changes = dict(fields)
        if phase is not None and phase != current.phase:
            check_transition(current.phase, phase)
            changes["phase"] = phase
            if phase in TERMINAL_PHASES and "completion_time" not in changes:
                changes["completion_time"] = timezone.now()
            if phase != PrebuildPhase.SNAPSHOTTING and "snapshot_completion_percentage" not in changes:
                changes["snapshot_completion_percentage"] = None
        return changes

    with transaction.atomic():
        prebuild, changed = cas_update(prebuild, version_field="status_version", mutate=mutate)
        if changed and phase == PrebuildPhase.COMPLETED:
            completed = prebuild
            transaction.on_commit(lambda: prebuild_completed.send(sender=Prebuild, prebuild=completed))
    return prebuild


def prebuild_enqueue(*, prebuild: Prebuild, now: datetime | None = None) -> None:
    """Send the prebuild to its runner's queue after commit, noting when. `now` is the reaper's
    clock when it re-sends: it reads enqueued_at back to send once per period."""
    Prebuild.objects.filter(id=prebuild.id).update(enqueued_at=now or timezone.now())
    dispatch.run_prebuild(prebuild)


def prebuild_claim(*, prebuild_id) -> Prebuild | None:
    """A worker's claim on a PENDING prebuild: a conditional update, so that a duplicate delivery of
    the same message (or two workers) cannot both run it. None when someone else has it."""
    now = timezone.now()
    claimed = Prebuild.objects.filter(
        id=prebuild_id, phase=PrebuildPhase.PENDING, desired_phase=PrebuildPhase.UNSPECIFIED
    ).update(
        phase=PrebuildPhase.STARTING,
        started_at=now,
        heartbeat_at=now,
        updated_at=now,
        status_version=F("status_version") + 1,
    )
    if claimed != 1:
        return None
    return Prebuild.objects.select_related("project", "environment_class__runner").get(id=prebuild_id)


def prebuild_heartbeat(*, prebuild_id) -> None:
    """The worker is alive. Liveness bookkeeping for the reaper (which fails prebuilds whose
    heartbeat stops), not observed state a client reads: written without a status_version bump so
    that versions count real changes only."""
    Prebuild.objects.filter(id=prebuild_id).update(heartbeat_at=timezone.now())


STEP_FIELDS = frozenset({"started_at", "ended_at", "outcome", "exit_status", "bytes"})


def prebuild_step_report(*, prebuild_id, name: str, position: int, **fields) -> None:
    """A step's start or end, as the runner reports it: one row per step name, for the timeline."""
    unknown = set(fields) - STEP_FIELDS
    if unknown:
        raise ValueError(f"not step fields: {sorted(unknown)}")
    PrebuildStep.objects.update_or_create(prebuild_id=prebuild_id, name=name, defaults={**fields, "position": position})


def unowned(phase: int) -> bool:
    """No runner holds it (not started yet, or finished and not yet deleted): whoever asks may move
    it to DELETING without waiting for a runner."""
    return phase == PrebuildPhase.PENDING or phase in TERMINAL_PHASES - {PrebuildPhase.DELETED}


def prebuild_finish_unstarted(*, prebuild: Prebuild, phase: int) -> Prebuild:
    """Move a PENDING prebuild to `phase` unless a worker claimed it meanwhile (then the worker
    sees the desired phase and stops it)."""

    def mutate(current: Prebuild):
        if current.phase != PrebuildPhase.PENDING:
            return None
        return {"phase": phase, "completion_time": timezone.now()}

    prebuild, _ = cas_update(prebuild, version_field="status_version", mutate=mutate)
    return prebuild


def prebuild_start_deleting(*, prebuild: Prebuild) -> Prebuild:
    """Move a prebuild no runner owns to DELETING and ask its runner to remove its files."""

    def mutate(current: Prebuild):
        if not unowned(current.phase):
            return None
        return {"phase": PrebuildPhase.DELETING}

    prebuild, changed = cas_update(prebuild, version_field="status_version", mutate=mutate)
    if changed:
        dispatch.delete_prebuild(prebuild)
    return prebuild


def prebuild_cancel_unstarted(*, prebuild: Prebuild) -> Prebuild:
    """Finish what was asked of a PENDING prebuild that no worker will start (reaper)."""
    with transaction.atomic():
        if prebuild.desired_phase == PrebuildPhase.DELETED:
            return prebuild_start_deleting(prebuild=prebuild)
        return prebuild_finish_unstarted(prebuild=prebuild, phase=PrebuildPhase.CANCELLED)


def prebuild_deleted(*, prebuild: Prebuild) -> Prebuild:
    """Its runner removed its files: drop its steps and mark it DELETED."""
    prebuild.steps.all().delete()
    return prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.DELETED)


def prebuild_finished(*, prebuild: Prebuild) -> None:
    """After a run ends (by its worker or by the reaper): archive its logs, keep the schedule's
    failure count, alert on failure, and go on with a deletion asked for while it ran."""
    logstore.archive(prebuild)
    _record_schedule_outcome(prebuild)
    if prebuild.phase == PrebuildPhase.FAILED and prebuild.project.webhook_url:
        dispatch.send_failure_webhook(prebuild)
    current = Prebuild.objects.get(id=prebuild.id)
    if current.desired_phase == PrebuildPhase.DELETED:
        prebuild_start_deleting(prebuild=current)


def _record_schedule_outcome(prebuild: Prebuild) -> None:
    succeeded = prebuild.phase == PrebuildPhase.COMPLETED
    failed = prebuild.phase == PrebuildPhase.FAILED
    scheduled = prebuild.triggered_by == PrebuildTrigger.SCHEDULED
    if not (succeeded or (failed and scheduled)):
        return
    with transaction.atomic():
        state, _ = ScheduleState.objects.select_for_update().get_or_create(
            project_id=prebuild.project_id, environment_class_id=prebuild.environment_class_id
        )
        if succeeded:
            # Any success resets the count; only a manual success lifts a pause (a paused pair
            # gets no scheduled prebuilds, so a person has to show that the build works again).
            state.consecutive_failures = 0
            if not scheduled:
                state.paused_at, state.paused_reason = None, ""
        else:
            state.consecutive_failures += 1
            limit = settings.SCHEDULE_PAUSE_AFTER_FAILURES
            if state.consecutive_failures >= limit and state.paused_at is None:
                state.paused_at = timezone.now()
                state.paused_reason = (
                    f"Scheduled prebuilds are paused after {state.consecutive_failures} consecutive failures "
                    f"(last: {prebuild.failure_message[:300]}). A successful manual prebuild resumes them."
                )
        state.save()
