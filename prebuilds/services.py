"""Every write to a prebuild goes through here, whatever the interface (pages, REST, Connect, admin,
scheduler, worker). Spec writes come from people and the scheduler; status writes from the runner
side. Both are compare-and-swap on their own version counter.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import django.dispatch
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import FailedPrecondition, InvalidArgument
from core.lookups import get_by_id
from core.paths import redact_paths
from core.versioning import cas_update
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase, PrebuildTrigger, ScheduleState
from prebuilds.phases import check_transition
from projects.models import EnvironmentClass, Principal, Project
from projects.services import require_admin, require_member

log = logging.getLogger(__name__)

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
    }
)


def prebuild_get(*, user, prebuild_id, related: bool = False) -> Prebuild:
    """A prebuild the user may see; NotFound otherwise (deleted, another organization, bad id).
    `related` joins the project, class and people, for pages that show their names; the APIs
    read only the *_id columns, and the joins would only cost time."""
    queryset = Prebuild.objects.visible_to(user)
    if related:
        queryset = queryset.for_list()
    return get_by_id(queryset, prebuild_id, label="prebuild", field="prebuild_id")


def resolve_environment_class(project: Project, environment_class_id) -> EnvironmentClass:
    """The class a prebuild of `project` runs on: the one asked for, which must get prebuilds on
    the project (or be its default), or else the project's default class."""
    if environment_class_id in (None, ""):
        environment_class = project.default_environment_class
        if environment_class is None:
            raise InvalidArgument(
                "environment_class_id is required: the project has no default environment class",
                field="environment_class_id",
            )
    else:
        environment_class = get_by_id(
            EnvironmentClass.objects.in_organization(project.organization).select_related("runner"),
            environment_class_id,
            label="environment class",
            field="environment_class_id",
        )
        allowed = environment_class.id == project.default_environment_class_id or (
            project.prebuild_environment_classes.filter(id=environment_class.id).exists()
        )
        if not allowed:
            raise FailedPrecondition(
                f"environment class {environment_class.display_name!r} does not have prebuilds enabled "
                f"on project {project.name!r}",
                field="environment_class_id",
            )
    if not environment_class.enabled:
        raise FailedPrecondition(
            f"environment class {environment_class.display_name!r} is disabled", field="environment_class_id"
        )
    return environment_class


def validate_timeout(timeout: timedelta | None) -> timedelta:
    """spec.timeout: positive and at most 2 hours; 1 hour when absent. (The 5-minute floor belongs
    to the project configuration, not to a single prebuild.)"""
    if timeout is None:
        return settings.PREBUILD_DEFAULT_TIMEOUT
    if not isinstance(timeout, timedelta):
        raise InvalidArgument("spec.timeout must be a duration", field="spec.timeout")
    if timeout <= timedelta(0):
        raise InvalidArgument("spec.timeout must be positive", field="spec.timeout")
    if timeout > settings.PREBUILD_MAX_TIMEOUT:
        raise InvalidArgument("spec.timeout must be at most 2 hours", field="spec.timeout")
    return timeout


@transaction.atomic
def prebuild_create(
    *,
    actor,
    project: Project,
    environment_class_id=None,
    timeout: timedelta | None = None,
    triggered_by: int = PrebuildTrigger.MANUAL,
) -> Prebuild:
    """Create a PENDING prebuild and hand it to its runner's queue once the transaction commits."""
    require_member(actor, project.organization_id)
    if project.deleted_at is not None:
        raise FailedPrecondition(f"project {project.name!r} is deleted", field="project_id")
    environment_class = resolve_environment_class(project, environment_class_id)
    timeout = validate_timeout(timeout)
    prebuild = Prebuild.objects.create(
        organization_id=project.organization_id,
        project=project,
        environment_class=environment_class,
        creator=actor,
        creator_principal=Principal.USER,
        executor=project.executor or actor,
        triggered_by=triggered_by,
        timeout=timeout,
    )
    enqueue_prebuild(prebuild)
    return prebuild


def enqueue_prebuild(prebuild: Prebuild, *, now: datetime | None = None) -> None:
    """Send the prebuild to its runner's queue after commit (a worker must see the row). `now` is
    the reaper's clock when it re-sends: it reads enqueued_at back to send once per period."""
    from prebuilds import tasks  # tasks import services: import here to keep the module graph simple

    queue = prebuild.environment_class.runner.queue
    Prebuild.objects.filter(id=prebuild.id).update(enqueued_at=now or timezone.now())
    # robust: the prebuild is committed whatever happens to the broker; if the message cannot be
    # sent now, the reaper sends it later, and the caller still gets its prebuild.
    transaction.on_commit(lambda: tasks.run_prebuild.apply_async(args=[str(prebuild.id)], queue=queue), robust=True)


def prebuild_cancel(*, actor, prebuild: Prebuild) -> Prebuild:
    """Ask for cancellation. Idempotent: a finished (or already cancelling) prebuild comes back
    unchanged. A PENDING prebuild has no runner yet, so it goes straight to CANCELLED."""
    require_member(actor, prebuild.organization_id)

    def mutate(current: Prebuild):
        if current.phase in TERMINAL_PHASES or current.desired_phase in (
            PrebuildPhase.CANCELLED,
            PrebuildPhase.DELETED,
        ):
            return None
        return {"desired_phase": PrebuildPhase.CANCELLED}

    with transaction.atomic():
        prebuild, _ = cas_update(prebuild, version_field="spec_version", mutate=mutate)
        if prebuild.phase == PrebuildPhase.PENDING and prebuild.desired_phase == PrebuildPhase.CANCELLED:
            prebuild = _finish_unstarted(prebuild, PrebuildPhase.CANCELLED)
    return prebuild


def prebuild_delete(*, actor, prebuild: Prebuild) -> Prebuild:
    """Mark for deletion. A prebuild no runner owns goes to DELETING at once and its files are
    removed in the background; a running one is stopped by its runner first. Idempotent."""
    require_admin(actor, prebuild.organization_id, "delete prebuilds")
    return _request_deletion(prebuild)


def prebuild_expire(*, prebuild: Prebuild) -> Prebuild:
    """Retention: the same deletion, asked for by the system instead of a person."""
    return _request_deletion(prebuild)


def _request_deletion(prebuild: Prebuild) -> Prebuild:
    def mutate(current: Prebuild):
        if current.desired_phase == PrebuildPhase.DELETED or current.phase == PrebuildPhase.DELETED:
            return None
        return {"desired_phase": PrebuildPhase.DELETED}

    with transaction.atomic():
        prebuild, _ = cas_update(prebuild, version_field="spec_version", mutate=mutate)
        if _unowned(prebuild.phase):
            prebuild = _start_deleting(prebuild)
    return prebuild


def _unowned(phase: int) -> bool:
    """No runner holds it (not started yet, or finished and not yet deleted): the service itself
    may move it to DELETING."""
    return phase == PrebuildPhase.PENDING or phase in TERMINAL_PHASES - {PrebuildPhase.DELETED}


def _finish_unstarted(prebuild: Prebuild, phase: int) -> Prebuild:
    """Move a PENDING prebuild to `phase` unless a worker claimed it meanwhile (then the worker
    sees the desired phase and stops it)."""

    def mutate(current: Prebuild):
        if current.phase != PrebuildPhase.PENDING:
            return None
        return {"phase": phase, "completion_time": timezone.now()}

    prebuild, _ = cas_update(prebuild, version_field="status_version", mutate=mutate)
    return prebuild


def _start_deleting(prebuild: Prebuild) -> Prebuild:
    def mutate(current: Prebuild):
        if not _unowned(current.phase):
            return None
        return {"phase": PrebuildPhase.DELETING}

    prebuild, changed = cas_update(prebuild, version_field="status_version", mutate=mutate)
    if changed:
        resend_deletion(prebuild=prebuild)
    return prebuild


def resend_deletion(*, prebuild: Prebuild) -> None:
    """Ask the prebuild's runner (which holds its snapshot and workspace) to remove its files."""
    from prebuilds import tasks

    queue = EnvironmentClass.objects.select_related("runner").get(id=prebuild.environment_class_id).runner.queue
    prebuild_id = str(prebuild.id)
    transaction.on_commit(lambda: tasks.delete_prebuild.apply_async(args=[prebuild_id], queue=queue), robust=True)


def prebuild_cancel_unstarted(*, prebuild: Prebuild) -> Prebuild:
    """Finish what was asked of a PENDING prebuild that no worker will start (reaper)."""
    with transaction.atomic():
        if prebuild.desired_phase == PrebuildPhase.DELETED:
            return _start_deleting(prebuild)
        return _finish_unstarted(prebuild, PrebuildPhase.CANCELLED)


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


def prebuild_create_logs_token(*, actor, prebuild: Prebuild) -> str:
    """A token that reads this prebuild's logs, live or archived, for one hour."""
    from prebuilds.logtokens import logs_token_issue

    require_member(actor, prebuild.organization_id)
    return logs_token_issue(prebuild=prebuild)


def prebuild_create_scheduled(
    *, project: Project, environment_class: EnvironmentClass, now: datetime
) -> Prebuild | None:
    """The scheduler's prebuild of a pair, created by the system on behalf of the project's
    executor (who is also its creator). None when one of the pair is already under way.

    Its created_at is the scheduler's `now`, not the moment of the insert: the next pass decides
    "already ran this hour" from it, so both must read the same clock."""
    executor = project.executor or project.created_by
    with transaction.atomic():
        busy = (
            Prebuild.objects.select_for_update()
            .filter(project=project, environment_class=environment_class)
            .non_terminal()
            .exclude(phase=PrebuildPhase.DELETING)
        )
        if busy.exists():
            return None
        prebuild = Prebuild.objects.create(
            organization_id=project.organization_id,
            project=project,
            environment_class=environment_class,
            creator=executor,
            creator_principal=Principal.USER,
            executor=executor,
            triggered_by=PrebuildTrigger.SCHEDULED,
            timeout=project.prebuild_timeout,
        )
        # auto_now_add overwrites a value given to create(); an update does not.
        Prebuild.objects.filter(id=prebuild.id).update(created_at=now)
        prebuild.created_at = now
        enqueue_prebuild(prebuild, now=now)
    return prebuild


def prebuild_finished(*, prebuild: Prebuild) -> None:
    """After a run ends (by its worker or by the reaper): archive its logs, keep the schedule's
    failure count, alert on failure, and go on with a deletion asked for while it ran."""
    from prebuilds import logstore, tasks

    logstore.archive(prebuild)
    _record_schedule_outcome(prebuild)
    if prebuild.phase == PrebuildPhase.FAILED and prebuild.project.webhook_url:
        transaction.on_commit(lambda: tasks.send_failure_webhook.delay(str(prebuild.id)))
    current = Prebuild.objects.get(id=prebuild.id)
    if current.desired_phase == PrebuildPhase.DELETED:
        _start_deleting(current)


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
