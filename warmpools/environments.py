"""Environments: "create an environment" for a project and class, and its removal.

A claim takes a ready instance from the pair's warm pool when there is one (a hit: a conditional
update hands it out, so two concurrent claims never get the same instance), else restores the
newest snapshot, else builds cold by running the prebuild lifecycle in a fresh checkout. A hit is
ready in the request itself; a restore or a cold build runs on the class's runner.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import PermissionDenied
from core.lookups import get_by_id
from core.paths import redact_paths
from prebuilds.services import resolve_environment_class
from projects.models import Project, Role
from projects.runner_bridge import ensure_traversable, sandbox_options, snapshot_store
from projects.services import require_member
from runner import instances as runner_instances
from runner.errors import RunnerError
from warmpools import services
from warmpools.models import (
    Environment,
    EnvironmentPhase,
    EnvironmentSource,
    InstanceState,
    PoolInstance,
    WarmPool,
    WarmPoolPhase,
)

CLAIM_ATTEMPTS = 5


def environments_dir() -> Path:
    return settings.DATA_DIR / "environments"


def environment_get(*, user, environment_id) -> Environment:
    return get_by_id(
        Environment.objects.visible_to(user).for_list(), environment_id, label="environment", field="environment_id"
    )


def environment_create(*, actor, project: Project, environment_class_id=None) -> Environment:
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
    }
    if pool is not None:
        instance = _claim_instance(pool)
        if instance is not None:
            now = timezone.now()
            with transaction.atomic():
                environment = Environment.objects.create(
                    **base,
                    instance=instance,
                    snapshot_id=instance.snapshot_id,
                    source=EnvironmentSource.POOL,
                    phase=EnvironmentPhase.READY,
                    path=instance.path,
                    ready_at=now,
                    ready_after_ms=(time.monotonic() - started) * 1000,
                )
                idle = (now - instance.ready_at).total_seconds() if instance.ready_at else 0.0
                WarmPool.objects.filter(id=pool.id).update(
                    hits=F("hits") + 1, idle_instance_seconds=F("idle_instance_seconds") + idle
                )
                services.schedule_reconcile(pool)  # the backfill
            return environment
        WarmPool.objects.filter(id=pool.id).update(misses=F("misses") + 1)
    snapshot = services.newest_snapshot(project.id, environment_class.id)
    with transaction.atomic():
        environment = Environment.objects.create(
            **base,
            snapshot=snapshot,
            source=EnvironmentSource.SNAPSHOT if snapshot else EnvironmentSource.COLD,
            phase=EnvironmentPhase.CREATING,
        )
        queue = environment_class.runner.queue
        environment_id = str(environment.id)
        from warmpools import tasks

        transaction.on_commit(lambda: tasks.build_environment.apply_async(args=[environment_id], queue=queue))
        if pool is not None:
            services.schedule_reconcile(pool)  # demand just rose: the autoscaler may want more instances
    return environment


def _claim_instance(pool: WarmPool) -> PoolInstance | None:
    """Hand out one running instance, oldest first. The conditional update is the claim: whoever
    flips RUNNING to CLAIMED first has it; the others move on to the next candidate."""
    for _ in range(CLAIM_ATTEMPTS):
        candidates = list(
            PoolInstance.objects.filter(pool=pool, state=InstanceState.RUNNING, snapshot_id=pool.snapshot_id)
            .order_by("ready_at")
            .values_list("id", flat=True)[:8]
        )
        if not candidates:
            return None
        for instance_id in candidates:
            taken = PoolInstance.objects.filter(id=instance_id, state=InstanceState.RUNNING).update(
                state=InstanceState.CLAIMED, claimed_at=timezone.now()
            )
            if taken:
                return PoolInstance.objects.get(id=instance_id)
    return None


def build(environment_id) -> Environment | None:
    """On the runner: restore the snapshot into a fresh workspace, or build it cold."""
    environment = (
        Environment.objects.select_related("project", "environment_class", "snapshot")
        .filter(id=environment_id, phase=EnvironmentPhase.CREATING)
        .first()
    )
    if environment is None:
        return None
    workspace = environments_dir() / str(environment.id)
    ensure_traversable(environments_dir())
    try:
        if environment.source == EnvironmentSource.SNAPSHOT:
            snapshot = environment.snapshot
            runner_instances.start(
                snapshot_store(), str(snapshot.id), workspace, expected_sha256=snapshot.snapshot_sha256
            )
        else:
            project = environment.project
            runner_instances.build_cold(
                project.repository_url,
                project.branch,
                workspace,
                access_token=project.access_token or None,
                devcontainer_path=project.devcontainer_path,
                timeout_seconds=project.prebuild_timeout.total_seconds(),
                **sandbox_options(environment.environment_class).arguments(),
            )
    except (RunnerError, OSError) as exc:
        Environment.objects.filter(id=environment.id).update(
            phase=EnvironmentPhase.FAILED, failure_message=redact_paths(str(exc))
        )
        return Environment.objects.get(id=environment.id)
    now = timezone.now()
    became_ready = Environment.objects.filter(id=environment.id, phase=EnvironmentPhase.CREATING).update(
        phase=EnvironmentPhase.READY,
        path=str(workspace),
        ready_at=now,
        ready_after_ms=(now - environment.created_at).total_seconds() * 1000,
    )
    if not became_ready:  # deleted while it was being built: nobody will ever use this workspace
        runner_instances.remove(workspace)
    return Environment.objects.get(id=environment.id)


def environment_delete(*, actor, environment: Environment) -> Environment:
    """Its creator or an organization admin may delete an environment."""
    if require_member(actor, environment.organization_id) != Role.ADMIN and environment.creator_id != actor.pk:
        raise PermissionDenied("only its creator or an organization admin may delete an environment")
    updated = Environment.objects.filter(
        id=environment.id, phase__in=[EnvironmentPhase.READY, EnvironmentPhase.FAILED, EnvironmentPhase.CREATING]
    ).update(phase=EnvironmentPhase.DELETING)
    environment.refresh_from_db()
    if updated:
        from warmpools import tasks

        queue = environment.environment_class.runner.queue
        environment_id = str(environment.id)
        transaction.on_commit(lambda: tasks.remove_environment.apply_async(args=[environment_id], queue=queue))
    return environment


def remove(environment_id) -> None:
    """On the runner: remove a deleted environment's workspace."""
    environment = Environment.objects.filter(id=environment_id, phase=EnvironmentPhase.DELETING).first()
    if environment is None:
        return
    if environment.path:
        runner_instances.remove(Path(environment.path))
    if environment.instance_id:
        PoolInstance.objects.filter(id=environment.instance_id).update(
            state=InstanceState.RETIRED, retired_at=timezone.now()
        )
    Environment.objects.filter(id=environment.id).update(phase=EnvironmentPhase.DELETED)
