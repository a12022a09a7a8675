"""Every write to a warm pool goes through here. Spec writes come from people (create, resize,
delete) and from prebuild completion (snapshot rotation); status writes from the reconciler."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from core.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from core.lookups import get_by_id
from core.paths import redact_paths
from core.versioning import cas_update
from prebuilds.models import Prebuild, PrebuildPhase
from projects.models import EnvironmentClass, Project
from projects.services import require_admin
from warmpools.models import WarmPool, WarmPoolPhase
from warmpools.phases import check_transition
from warmpools.shapes import WARM_POOL

STATUS_FIELDS = frozenset({"failure_message", "running_instances", "stopped_instances", "status_desired_size"})


def warm_pool_get(*, user, warm_pool_id) -> WarmPool:
    return get_by_id(WarmPool.objects.visible_to(user), warm_pool_id, label="warm pool", field="warm_pool_id")


def resolve_sizes(
    *, min_size: int | None, max_size: int | None, desired_size: int | None, current: WarmPool | None = None
) -> tuple[int, int]:
    """The pool's (min, max) from a request. A request with only the deprecated desired_size means
    min = max = desired_size; absent fields keep their current value (or min 0 on create)."""
    shape = WARM_POOL
    for field, value in ((shape.min_size, min_size), (shape.max_size, max_size), (shape.desired_size, desired_size)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < field.min_value):
            raise InvalidArgument(field.min_error(), field=field.path)
    if min_size is None and max_size is None:
        if desired_size is not None:
            min_size = max_size = desired_size
        elif current is None:
            raise InvalidArgument("max_size (or desired_size) is required", field="max_size")
    if min_size is None:
        min_size = current.min_size if current else 0
    if max_size is None:
        max_size = current.max_size if current else max(min_size, 1)
    if max_size > shape.max_size.max_value:
        raise InvalidArgument(shape.max_size.max_error(), field=shape.max_size.path)
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


def newest_snapshot(project_id, environment_class_id) -> Prebuild | None:
    """The newest COMPLETED prebuild of the pair: its snapshot is what a pool warms."""
    return (
        Prebuild.objects.filter(
            project_id=project_id, environment_class_id=environment_class_id, phase=PrebuildPhase.COMPLETED
        )
        .order_by("-completion_time", "-created_at")
        .first()
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
    snapshot = newest_snapshot(project.id, environment_class.id)
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
    schedule_reconcile(pool)
    return pool


def warm_pool_update(
    *,
    actor,
    pool: WarmPool,
    min_size: int | None = None,
    max_size: int | None = None,
    desired_size: int | None = None,
) -> WarmPool:
    """Resize. Fields left out keep their value; desired_size alone sets min = max."""
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
        return changes

    with transaction.atomic():
        pool, changed = cas_update(pool, version_field="spec_version", mutate=mutate)
        if changed:
            schedule_reconcile(pool)
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
            if pool.phase != WarmPoolPhase.DELETING:
                pool = warm_pool_set_status(pool=pool, phase=WarmPoolPhase.DELETING)
            schedule_reconcile(pool)
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
            schedule_reconcile(pool)
    return pool


def warm_pool_set_status(*, pool: WarmPool, phase: int | None = None, **fields) -> WarmPool:
    """The reconciler's one way to write status (legal transitions only, CAS on status_version)."""
    unknown = set(fields) - STATUS_FIELDS
    if unknown:
        raise ValueError(f"not status fields: {sorted(unknown)}")
    if "failure_message" in fields:
        # Provisioning errors name the runner's folders; callers see the place, not the path.
        fields["failure_message"] = redact_paths(fields["failure_message"])

    def mutate(current: WarmPool):
        changes = {k: v for k, v in fields.items() if getattr(current, k) != v}
        if phase is not None and phase != current.phase:
            check_transition(current.phase, phase)
            changes["phase"] = phase
        return changes

    pool, _ = cas_update(pool, version_field="status_version", mutate=mutate)
    return pool


def schedule_reconcile(pool: WarmPool) -> None:
    """Run the pool's reconciler on its runner once the current transaction commits."""
    from warmpools import tasks

    pool_id = str(pool.id)
    queue = pool.runner.queue if pool.runner_id else None
    transaction.on_commit(lambda: tasks.reconcile_pool.apply_async(args=[pool_id], queue=queue))


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
