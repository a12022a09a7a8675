"""The spec writes of a prebuild, whatever the interface (pages, REST, Connect, admin, scheduler):
creating one, and asking for its cancellation or deletion, compare-and-swap on spec_version. These
functions write no status: what the runner side observes is written by prebuilds/status.py, which
a request also calls to settle a prebuild no runner owns (a PENDING one cancelled, a finished one
deleted). Tasks are sent through prebuilds/dispatch.py, by name.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from core.errors import FailedPrecondition, InvalidArgument
from core.lookups import get_by_id
from core.versioning import cas_update
from prebuilds import status
from prebuilds.logtokens import logs_token_issue
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase, PrebuildTrigger
from projects.models import EnvironmentClass, Principal, Project
from projects.services import require_admin, require_member


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
    if environment_class_id is None:
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


@transaction.atomic
def prebuild_create(
    *,
    actor,
    project: Project,
    environment_class_id=None,
    timeout: timedelta | None = None,
    triggered_by: int = PrebuildTrigger.MANUAL,
) -> Prebuild:
    """Create a PENDING prebuild and hand it to its runner's queue once the transaction commits.

    `timeout` (1 hour when None) is within the rule of gitpod.v1's PrebuildSpec.timeout, 5 minutes
    to 2 hours: the interfaces check the request message (core.validation) before calling this."""
    require_member(actor, project.organization_id)
    if project.deleted_at is not None:
        raise FailedPrecondition(f"project {project.name!r} is deleted", field="project_id")
    environment_class = resolve_environment_class(project, environment_class_id)
    if timeout is None:
        timeout = settings.PREBUILD_DEFAULT_TIMEOUT
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
    status.prebuild_enqueue(prebuild=prebuild)
    return prebuild


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
            # No runner will see the request: settle it here (a runner that claimed it meanwhile
            # wins the status write, then sees the desired phase and stops).
            prebuild = status.prebuild_finish_unstarted(prebuild=prebuild, phase=PrebuildPhase.CANCELLED)
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
        if status.unowned(prebuild.phase):
            prebuild = status.prebuild_start_deleting(prebuild=prebuild)
    return prebuild


def prebuild_create_logs_token(*, actor, prebuild: Prebuild) -> str:
    """A token that reads this prebuild's logs, live or archived, for one hour."""
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
        status.prebuild_enqueue(prebuild=prebuild, now=now)
    return prebuild
