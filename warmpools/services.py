"""The spec writes of warm pools and environments: what people ask for (create, resize, delete a
pool; create, delete an environment) and what prebuild completion asks for (snapshot rotation).

Keyword-only, atomic, validation inside; every interface (pages, REST, Connect, signals) calls
these. What is observed (phases, counts, instances, workspaces) is written by warmpools/status.py;
work is enqueued by name through warmpools/dispatch.py.
"""

from __future__ import annotations

import time

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from core.lookups import get_by_id
from core.versioning import cas_update
from prebuilds.models import Prebuild
from prebuilds.services import resolve_environment_class
from projects.models import EnvironmentClass, Project, Role
from projects.runner_bridge import organization_container_backend
from projects.services import require_admin, require_member
from runner import instances as runner_instances
from warmpools import dispatch, queries, status
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource, WarmPool, WarmPoolPhase


def warm_pool_get(*, user, warm_pool_id) -> WarmPool:
    return get_by_id(WarmPool.objects.visible_to(user), warm_pool_id, label="warm pool", field="warm_pool_id")


def resolve_sizes(
    *, min_size: int | None, max_size: int | None, desired_size: int | None, current: WarmPool | None = None
) -> tuple[int, int]:
    """The pool's (min, max) from a request. A request with only the deprecated desired_size means
    min = max = desired_size; absent fields keep their current value (or min 0 on create).

    Each size is within its rule of the gitpod.v1 request (min 0..20, max and desired 1..20): the
    interfaces check the request message (core.validation) before calling the services. What the
    descriptors cannot say is said here: a pool needs a maximum, and min may not exceed max."""
    if min_size is None and max_size is None:
        if desired_size is not None:
            min_size = max_size = desired_size
        elif current is None:
            raise InvalidArgument("max_size (or desired_size) is required", field="max_size")
    if min_size is None:
        min_size = current.min_size if current else 0
    if max_size is None:
        max_size = current.max_size if current else max(min_size, 1)
    if min_size > max_size:
        raise InvalidArgument(f"min_size ({min_size}) must not exceed max_size ({max_size})", field="min_size")
    return min_size, max_size


def _check_class_gets_prebuilds(project: Project, environment_class: EnvironmentClass) -> None:
    # Read from the database, not from the caller's copy: the configuration may have just changed.
    current = Project.objects.alive().filter(pk=project.pk).values_list("prebuilds_enabled", flat=True).first()
    if not current:
        raise FailedPrecondition(f"prebuilds are disabled on project {project.name!r}", field="environment_class_id")
    if not project.prebuild_environment_classes.filter(id=environment_class.id).exists():
        raise FailedPrecondition(
            f"environment class {environment_class.display_name!r} does not have prebuilds enabled on "
            f"project {project.name!r}",
            field="environment_class_id",
        )


@transaction.atomic
def warm_pool_create(
    *,
    actor,
    project: Project,
    environment_class_id,
    min_size: int | None = None,
    max_size: int | None = None,
    desired_size: int | None = None,
) -> WarmPool:
    require_admin(actor, project.organization_id, "create warm pools")
    environment_class = get_by_id(
        EnvironmentClass.objects.in_organization(project.organization).select_related("runner"),
        environment_class_id,
        label="environment class",
        field="environment_class_id",
    )
    min_size, max_size = resolve_sizes(min_size=min_size, max_size=max_size, desired_size=desired_size)
    _check_class_gets_prebuilds(project, environment_class)
    if not environment_class.enabled:
        # As CreatePrebuild refuses it: no prebuild could ever give the pool a snapshot.
        raise FailedPrecondition(
            f"environment class {environment_class.display_name!r} is disabled", field="environment_class_id"
        )
    snapshot = queries.newest_snapshot(project.id, environment_class.id)
    try:
        with transaction.atomic():
            pool = WarmPool.objects.create(
                organization_id=project.organization_id,
                project=project,
                environment_class=environment_class,
                runner=environment_class.runner,
                min_size=min_size,
                max_size=max_size,
                desired_size=desired_size,
                snapshot=snapshot,
                status_desired_size=min_size,
            )
    except IntegrityError:
        raise AlreadyExists(
            f"a warm pool for project {project.name!r} and class {environment_class.display_name!r} exists",
            field="environment_class_id",
        ) from None
    dispatch.reconcile_pool(pool)
    return pool


def warm_pool_update(
    *,
    actor,
    pool: WarmPool,
    min_size: int | None = None,
    max_size: int | None = None,
    desired_size: int | None = None,
) -> WarmPool:
    """Resize. Fields left out keep their value; desired_size alone sets min = max. A request that
    changes nothing (no size, or the sizes the pool has) writes nothing: spec_version stays."""
    require_admin(actor, pool.organization_id, "resize warm pools")

    def mutate(current: WarmPool):
        if current.desired_phase == WarmPoolPhase.DELETED or current.phase in (
            WarmPoolPhase.DELETING,
            WarmPoolPhase.DELETED,
        ):
            raise FailedPrecondition("the warm pool is being deleted", field="warm_pool_id")
        new_min, new_max = resolve_sizes(
            min_size=min_size, max_size=max_size, desired_size=desired_size, current=current
        )
        changes = {"min_size": new_min, "max_size": new_max}
        if desired_size is not None:
            changes["desired_size"] = desired_size
        return {name: value for name, value in changes.items() if getattr(current, name) != value}

    with transaction.atomic():
        pool, changed = cas_update(pool, version_field="spec_version", mutate=mutate)
        if changed:
            dispatch.reconcile_pool(pool)
    return pool


def warm_pool_delete(*, actor, pool: WarmPool) -> WarmPool:
    require_admin(actor, pool.organization_id, "delete warm pools")
    return request_pool_deletion(pool)


def request_pool_deletion(pool: WarmPool) -> WarmPool:
    """Mark for deletion (idempotent); the reconciler drains the instances, then DELETED."""

    def mutate(current: WarmPool):
        if current.desired_phase == WarmPoolPhase.DELETED or current.phase == WarmPoolPhase.DELETED:
            return None
        return {"desired_phase": WarmPoolPhase.DELETED}

    with transaction.atomic():
        pool, changed = cas_update(pool, version_field="spec_version", mutate=mutate)
        if changed:
            # Shown as DELETING at once on every page and API, before the reconciler (on the
            # runner, maybe busy) gets to drain it: the one status write a request makes for a pool.
            if pool.phase != WarmPoolPhase.DELETING:
                pool = status.warm_pool_set_status(pool=pool, phase=WarmPoolPhase.DELETING)
            dispatch.reconcile_pool(pool)
    return pool


def warm_pool_set_snapshot(*, pool: WarmPool, snapshot: Prebuild) -> WarmPool:
    """Rotation: point the pool at a newer completed prebuild (never at an older one)."""

    def mutate(current: WarmPool):
        if current.desired_phase == WarmPoolPhase.DELETED or current.snapshot_id == snapshot.id:
            return None
        if current.snapshot_id is not None:
            existing = Prebuild.objects.filter(id=current.snapshot_id).values_list("completion_time", flat=True)
            existing_time = existing.first()
            if existing_time and snapshot.completion_time and existing_time > snapshot.completion_time:
                return None
        return {"snapshot_id": snapshot.id}

    with transaction.atomic():
        pool, changed = cas_update(pool, version_field="spec_version", mutate=mutate)
        if changed:
            dispatch.reconcile_pool(pool)
    return pool


def on_prebuild_completed(sender, prebuild: Prebuild, **kwargs) -> None:
    """Rotation: pools of the completed prebuild's pair move onto its snapshot."""
    for pool in WarmPool.objects.filter(
        project_id=prebuild.project_id, environment_class_id=prebuild.environment_class_id
    ).exclude(phase__in=[WarmPoolPhase.DELETING, WarmPoolPhase.DELETED]):
        warm_pool_set_snapshot(pool=pool, snapshot=prebuild)


def on_prebuild_configuration_changed(sender, project, removed_class_ids, **kwargs) -> None:
    """Disabling prebuilds, or removing a class from the configuration, deletes the pools."""
    for pool in WarmPool.objects.filter(project=project, environment_class_id__in=removed_class_ids).exclude(
        desired_phase=WarmPoolPhase.DELETED
    ):
        request_pool_deletion(pool)


# --- environments ------------------------------------------------------------------------------


def environment_get(*, user, environment_id) -> Environment:
    return get_by_id(
        Environment.objects.visible_to(user).for_list(), environment_id, label="environment", field="environment_id"
    )


def environment_create(*, actor, project: Project, environment_class_id=None) -> Environment:
    """Ask for a READY environment of the project and class. A ready instance of the pair's warm
    pool is handed out in the request (a hit: ready in the answer); otherwise the class's runner
    restores the newest snapshot, or builds cold when there is none."""
    started = time.monotonic()
    require_member(actor, project.organization_id)
    environment_class = resolve_environment_class(project, environment_class_id)
    pool = (
        WarmPool.objects.filter(project=project, environment_class=environment_class, desired_phase=0)
        .exclude(phase__in=[WarmPoolPhase.DELETING, WarmPoolPhase.DELETED])
        .first()
    )
    base = {
        "organization_id": project.organization_id,
        "project": project,
        "environment_class": environment_class,
        "creator": actor,
        "pool": pool,
        "desired_phase": EnvironmentPhase.READY,
    }
    if pool is not None:
        # The claim is one conditional update on an instance (status.py owns instance state): two
        # concurrent claims never get the same one.
        instance = status.claim_instance(pool)
        if instance is not None:
            now = timezone.now()
            with transaction.atomic():
                environment = Environment.objects.create(
                    **base, instance=instance, snapshot_id=instance.snapshot_id, source=EnvironmentSource.POOL
                )
                # Nobody else will report this one ready: the workspace already exists.
                # A container instance is handed over as it runs (no path on the runner's disk).
                in_container = runner_instances.is_container_instance(instance.path)
                environment, _ = status.environment_ready(
                    environment=environment,
                    path="" if in_container else instance.path,
                    ready_at=now,
                    ready_after_ms=(time.monotonic() - started) * 1000,
                    container_name=instance.path if in_container else "",
                    image=instance.snapshot.snapshot_image if in_container and instance.snapshot else "",
                )
                if in_container:
                    # READY now: waitFor defaults to updateContentCommand, which the prebuild ran;
                    # postCreateCommand and postStartCommand run next, in the container.
                    dispatch.finish_environment(environment)
                idle = (now - instance.ready_at).total_seconds() if instance.ready_at else 0.0
                status.record_hit(pool, idle_seconds=idle)
                dispatch.reconcile_pool(pool)  # the backfill
            return environment
        status.record_miss(pool)
    snapshot = queries.newest_snapshot(project.id, environment_class.id)
    with transaction.atomic():
        environment = Environment.objects.create(
            **base, snapshot=snapshot, source=EnvironmentSource.SNAPSHOT if snapshot else EnvironmentSource.COLD
        )
        dispatch.build_environment(environment)
        if pool is not None:
            dispatch.reconcile_pool(pool)  # demand just rose: the autoscaler may want more instances
    return environment


def environment_exec(*, actor, environment: Environment, command: list[str], timeout_seconds: int):
    """Run a command in a ready environment's container, as its remoteUser in its workspace folder
    (its creator or an organization admin may: queries.can_enter); a runner.instances.ExecResult."""
    if not queries.can_enter(actor, environment):
        raise PermissionDenied("only its creator or an organization admin may run commands in an environment")
    if environment.phase != EnvironmentPhase.READY or not environment.container_name:
        raise FailedPrecondition(
            "the environment has no running container (not ready, or not on the container backend)"
        )
    backend = organization_container_backend(environment.organization_id)
    return runner_instances.exec_in_container(
        backend,
        environment.container_name,
        command,
        user=environment.remote_user or "root",
        workdir=environment.workspace_folder or "/",
        timeout=timeout_seconds,
    )


def environment_delete(*, actor, environment: Environment) -> Environment:
    """Ask for its deletion (idempotent): its creator or an organization admin may. The request
    marks it DELETING at once (through status.py, so every page and API shows it), and the
    runner removes the workspace and reports it DELETED."""
    if require_member(actor, environment.organization_id) != Role.ADMIN and environment.creator_id != actor.pk:
        raise PermissionDenied("only its creator or an organization admin may delete an environment")

    def mutate(current: Environment):
        if current.desired_phase == EnvironmentPhase.DELETED:
            return None
        return {"desired_phase": EnvironmentPhase.DELETED}

    with transaction.atomic():
        environment, _ = cas_update(environment, version_field="spec_version", mutate=mutate)
        environment, deleting = status.environment_deleting(environment=environment)
        if deleting:
            dispatch.remove_environment(environment)
    environment.refresh_from_db()
    return environment
