"""The one writer of what is observed: pool status (phase, counts, failure message, the autoscaler's
target) with the reconciler's bookkeeping and the pool's metrics, the state of pool instances, and
environment status (phase, workspace path, failure message, readiness).

Spec (what was asked) is written by warmpools/services.py; this module only reports what is true.
The reconciler and the environment builder call it; a request calls it only to settle what nobody
else would (a claim hands out an instance in the request; a delete marks a pool or an environment
as being deleted at once, so that every page and API shows it).

Status fields move by compare-and-swap on status_version, along the transitions in
warmpools/phases.py. Counters and bookkeeping that many writers bump at once (hits, misses, idle
time, the lease, the backoff) are single conditional or F() updates and leave status_version alone:
they are not part of the wire status, and a version bump per claim would make the reconciler's
status writes retry for nothing.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Q
from django.utils import timezone

from core.paths import redact_paths
from core.versioning import cas_update
from warmpools.models import (
    Environment,
    EnvironmentPhase,
    InstanceState,
    PoolInstance,
    WarmPool,
)
from warmpools.phases import can_environment_transition, check_transition

STATUS_FIELDS = frozenset({"failure_message", "running_instances", "stopped_instances", "status_desired_size"})
ENVIRONMENT_STATUS_FIELDS = frozenset(
    {
        "path",
        "failure_message",
        "ready_at",
        "ready_after_ms",
        "container_name",
        "remote_user",
        "workspace_folder",
        "image",
    }
)

CLAIM_ATTEMPTS = 5

# --- pools -------------------------------------------------------------------------------------


def warm_pool_set_status(*, pool: WarmPool, phase: int | None = None, **fields) -> WarmPool:
    """Write a pool's status (legal transitions only, CAS on status_version)."""
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


def take_lease(pool_id, *, now: datetime, until: datetime) -> bool:
    """One reconcile pass at a time per pool: whoever sets an expired (or no) lease holds it."""
    return bool(
        WarmPool.objects.filter(id=pool_id)
        .filter(Q(reconcile_lease_until__isnull=True) | Q(reconcile_lease_until__lt=now))
        .update(reconcile_lease_until=until)
    )


def release_lease(pool_id) -> None:
    WarmPool.objects.filter(id=pool_id).update(reconcile_lease_until=None)


def target_changed(pool: WarmPool, *, now: datetime) -> None:
    """The autoscaler's target moved: the scale-down cooldown counts from `now`."""
    WarmPool.objects.filter(id=pool.id).update(target_changed_at=now)


def provisioning_failed(pool: WarmPool, *, failures: int, retry_at: datetime) -> None:
    WarmPool.objects.filter(id=pool.id).update(consecutive_failures=failures, next_attempt_at=retry_at)


def provisioning_succeeded(pool: WarmPool) -> None:
    WarmPool.objects.filter(id=pool.id).update(consecutive_failures=0, next_attempt_at=None)


def record_hit(pool: WarmPool, *, idle_seconds: float) -> None:
    """A claim took an instance that had been ready (and idle) for `idle_seconds`."""
    WarmPool.objects.filter(id=pool.id).update(
        hits=F("hits") + 1, idle_instance_seconds=F("idle_instance_seconds") + idle_seconds
    )


def record_miss(pool: WarmPool) -> None:
    WarmPool.objects.filter(id=pool.id).update(misses=F("misses") + 1)


# --- pool instances ----------------------------------------------------------------------------


def claim_instance(pool: WarmPool) -> PoolInstance | None:
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


def instance_running(instance: PoolInstance, *, path: str, size_bytes: int) -> PoolInstance:
    """A workspace restored on the runner's disk, ready to hand out (a new row or a staged one)."""
    return _instance_provisioned(instance, InstanceState.RUNNING, path=path, size_bytes=size_bytes)


def instance_staged(instance: PoolInstance, *, path: str, size_bytes: int) -> PoolInstance:
    """A snapshot archive staged on the runner's disk (a stopped instance)."""
    return _instance_provisioned(instance, InstanceState.STOPPED, path=path, size_bytes=size_bytes)


def _instance_provisioned(instance: PoolInstance, state: str, *, path: str, size_bytes: int) -> PoolInstance:
    instance.state = state
    instance.path = path
    instance.size_bytes = size_bytes
    instance.ready_at = timezone.now()
    instance.save()
    return instance


def instance_retired(pool: WarmPool, instance: PoolInstance) -> bool:
    """An idle instance is being removed, unless a claim took it meanwhile: conditional on the state
    it was read in. Its ready-but-unclaimed time goes into the pool's idle metric."""
    now = timezone.now()
    taken = PoolInstance.objects.filter(id=instance.id, state=instance.state).update(
        state=InstanceState.RETIRED, retired_at=now
    )
    if taken and instance.state == InstanceState.RUNNING and instance.ready_at:
        idle = (now - instance.ready_at).total_seconds()
        WarmPool.objects.filter(id=pool.id).update(idle_instance_seconds=F("idle_instance_seconds") + idle)
    return bool(taken)


def instance_vanished(instance: PoolInstance) -> None:
    """Its files are gone (disk wiped, manual cleanup): it no longer exists."""
    PoolInstance.objects.filter(id=instance.id, state=instance.state).update(
        state=InstanceState.RETIRED, retired_at=timezone.now()
    )


def instance_released(instance_id) -> None:
    """The environment a claimed instance became was deleted and its workspace removed."""
    PoolInstance.objects.filter(id=instance_id).update(state=InstanceState.RETIRED, retired_at=timezone.now())


# --- environments ------------------------------------------------------------------------------


def _environment_set_phase(environment: Environment, phase: str, **fields) -> tuple[Environment, bool]:
    """Move an environment to `phase` if the phase machine allows it from where it is now, with CAS
    on status_version. A writer that finds the row moved on (deleted while it was being built, say)
    writes nothing: the caller learns it lost from the second value."""
    unknown = set(fields) - ENVIRONMENT_STATUS_FIELDS
    if unknown:
        raise ValueError(f"not environment status fields: {sorted(unknown)}")

    def mutate(current: Environment):
        if not can_environment_transition(current.phase, phase):
            return None
        return {"phase": phase, **fields}

    return cas_update(environment, version_field="status_version", mutate=mutate)


def environment_ready(
    *,
    environment: Environment,
    path: str,
    ready_at: datetime,
    ready_after_ms: float,
    container_name: str = "",
    image: str = "",
) -> tuple[Environment, bool]:
    """The workspace exists at `path` (a claimed instance, or one the runner restored or built), or
    in the container `container_name` made from `image` (the container backend; path is empty)."""
    return _environment_set_phase(
        environment,
        EnvironmentPhase.READY,
        path=path,
        ready_at=ready_at,
        ready_after_ms=ready_after_ms,
        container_name=container_name,
        image=image,
    )


# The most of the lifecycle's output an environment keeps (the start of it, then a note).
LIFECYCLE_LOG_CAP = 256 * 1024


def environment_entered(*, environment: Environment, remote_user: str, workspace_folder: str) -> None:
    """Where a person gets in, read from the devcontainer.json in the environment's container."""
    Environment.objects.filter(id=environment.id).update(remote_user=remote_user, workspace_folder=workspace_folder)


def environment_log(*, environment: Environment, step: str, text: str) -> None:
    """Append a lifecycle step's output to the environment's log (one conditional update; capped)."""
    current = Environment.objects.filter(id=environment.id).values_list("lifecycle_log", flat=True).first()
    if current is None or len(current) >= LIFECYCLE_LOG_CAP:
        return
    lines = "".join(f"[{step}] {line}\n" for line in text.splitlines())
    Environment.objects.filter(id=environment.id).update(lifecycle_log=(current + lines)[:LIFECYCLE_LOG_CAP])


def environment_lifecycle_done(*, environment: Environment, at: datetime) -> None:
    Environment.objects.filter(id=environment.id).update(lifecycle_done_at=at)


def environment_failed(*, environment: Environment, message: str) -> tuple[Environment, bool]:
    # The runner's errors name its folders; callers see the place, not the path.
    return _environment_set_phase(environment, EnvironmentPhase.FAILED, failure_message=redact_paths(message))


def environment_deleting(*, environment: Environment) -> tuple[Environment, bool]:
    """Deletion asked for: from any live phase; the caller then has its workspace removed."""
    return _environment_set_phase(environment, EnvironmentPhase.DELETING)


def environment_deleted(*, environment: Environment) -> tuple[Environment, bool]:
    """Its workspace is gone."""
    return _environment_set_phase(environment, EnvironmentPhase.DELETED)
