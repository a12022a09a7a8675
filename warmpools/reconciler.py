"""Converges each warm pool's status toward its spec. Runs on the pool's runner (it touches the
runner's disk), single-flight per pool (a lease in the database), idempotent.

One pass:
1. a pool asked to be deleted drains every instance, then is DELETED;
2. the pool follows the newest completed snapshot of its (project, class);
3. instances whose files vanished are retired (counts come from what exists, not from what was
   asked for);
4. the autoscaler sets the target; running instances of the current snapshot are built up to it
   first, and only then are instances of an older snapshot and extra ones retired, so running
   capacity never drops below what exists during a rotation;
5. stopped instances (staged archives) fill the rest of max_size, so scaling up is quick;
6. a failure makes the pool DEGRADED with an actionable message, retried with backoff; the next
   successful pass makes it READY again.

A pass decides by one clock, `now`, read by its caller (the task) and passed down: the lease, the
backoff, the autoscaler's demand window and cooldown all compare against it, and what they write
for a later pass to read (target_changed_at, next_attempt_at, the lease) carries it.

It observes (the runner's disk) and acts (the runner's instances); every write of what it observed
goes through warmpools/status.py. Following a newer snapshot is a spec change, asked for through
warmpools/services.py like any other.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from prebuilds.models import Prebuild, PrebuildPhase
from projects import runner_bridge
from projects.models import Runner, RunnerBackend
from projects.runner_bridge import stage_instance, start_instance
from runner import instances as runner_instances
from runner.errors import RunnerError
from warmpools import autoscale, queries, services, status
from warmpools.models import Environment, EnvironmentPhase, InstanceState, PoolInstance, WarmPool, WarmPoolPhase

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_BACKOFF = timedelta(minutes=5)
FIRST_BACKOFF_SECONDS = 5
MAX_ROUNDS = 3


def pool_dir(pool: WarmPool) -> Path:
    return settings.POOLS_DIR / str(pool.id)


def reconcile(pool_id, *, now: datetime | None = None) -> WarmPool | None:
    """One pass over one pool, unless another pass holds its lease (then this one does nothing)."""
    now = now or timezone.now()
    if not status.take_lease(pool_id, now=now, until=now + LEASE):
        return WarmPool.objects.filter(id=pool_id).first()
    try:
        # A request that arrives while this pass holds the lease does nothing, so the pass itself
        # goes round again when the spec changed or claims were made meanwhile.
        for _ in range(MAX_ROUNDS):
            pool = WarmPool.objects.select_related("snapshot", "runner").get(id=pool_id)
            before = _signature(pool)
            pool = _reconcile(pool, now)
            if _signature(WarmPool.objects.get(id=pool_id)) == before:
                break
        return pool
    finally:
        status.release_lease(pool_id)


def _signature(pool: WarmPool) -> tuple:
    return (pool.spec_version, pool.hits, pool.misses)


def _reconcile(pool: WarmPool, now: datetime) -> WarmPool:
    if pool.phase == WarmPoolPhase.DELETED:
        return pool
    if pool.desired_phase == WarmPoolPhase.DELETED:
        return _drain(pool)

    newest = queries.newest_snapshot(pool.project_id, pool.environment_class_id)
    if newest is not None and newest.id != pool.snapshot_id:
        pool = services.warm_pool_set_snapshot(pool=pool, snapshot=newest)
        pool = WarmPool.objects.select_related("snapshot", "runner").get(id=pool.id)
    _forget_vanished(pool)

    target = autoscale.next_target(pool, now, autoscale.demand(pool, now))
    if target != pool.status_desired_size:
        status.target_changed(pool, now=now)

    if pool.snapshot is None:
        return _write_status(pool, WarmPoolPhase.PENDING, target, "")
    if pool.next_attempt_at and pool.next_attempt_at > now:
        return _write_status(pool, pool.phase, target, pool.failure_message)  # backing off
    try:
        _converge(pool, pool.snapshot, target)
    except (RunnerError, OSError) as exc:
        failures = pool.consecutive_failures + 1
        delay = min(timedelta(seconds=FIRST_BACKOFF_SECONDS * 2 ** (failures - 1)), MAX_BACKOFF)
        status.provisioning_failed(pool, failures=failures, retry_at=now + delay)
        message = (
            f"cannot provision instances from prebuild {pool.snapshot_id}: {exc}; "
            f"retrying in {int(delay.total_seconds())}s"
        )
        log.warning("warm pool %s degraded: %s", pool.id, message, extra={"pool_id": str(pool.id)})
        return _write_status(pool, WarmPoolPhase.DEGRADED, target, message)
    status.provisioning_succeeded(pool)
    return _write_status(pool, WarmPoolPhase.READY, target, "")


def _converge(pool: WarmPool, snapshot: Prebuild, target: int) -> None:
    current = PoolInstance.objects.filter(pool=pool, snapshot=snapshot)
    running = list(current.filter(state=InstanceState.RUNNING))
    staged = list(current.filter(state=InstanceState.STOPPED))
    # Build the new capacity first.
    while len(running) < target:
        source = staged.pop() if staged else None
        running.append(_start(pool, snapshot, source))
    # Then retire what is no longer wanted: older snapshots first, then extras (all idle: a
    # claimed instance is an environment and is never touched here).
    for instance in PoolInstance.objects.filter(
        pool=pool, state__in=[InstanceState.RUNNING, InstanceState.STOPPED]
    ).exclude(snapshot=snapshot):
        _retire(pool, instance)
    for instance in running[target:]:
        _retire(pool, instance)
    wanted_staged = max(0, pool.max_size - target)
    while len(staged) < wanted_staged:
        staged.append(_stage(pool, snapshot))
    for instance in staged[wanted_staged:]:
        _retire(pool, instance)


def _start(pool, snapshot, staged: PoolInstance | None) -> PoolInstance:
    instance = staged or PoolInstance(pool=pool, snapshot=snapshot)
    if runner_bridge.uses_containers(pool):
        if staged is not None and runner_instances.is_container_instance(staged.path):
            runner_bridge.start_instance_container(pool, staged.path)
            return status.instance_running(instance, path=staged.path, size_bytes=0)
        provisioned = runner_bridge.create_instance_container(
            pool, snapshot, instance.id, pool_dir(pool) / f"guard-{instance.id}", start=True
        )
        if staged is not None:
            _remove(pool, staged.path)
        return status.instance_running(instance, path=str(provisioned.path), size_bytes=provisioned.size_bytes)
    workspace = pool_dir(pool) / f"instance-{instance.id}"
    provisioned = start_instance(snapshot, workspace, staged=Path(staged.path) if staged else None)
    if staged is not None:
        runner_instances.remove(Path(staged.path))
    return status.instance_running(instance, path=str(provisioned.path), size_bytes=provisioned.size_bytes)


def _stage(pool, snapshot) -> PoolInstance:
    instance = PoolInstance(pool=pool, snapshot=snapshot)
    if runner_bridge.uses_containers(pool):
        # A stopped instance: the image on the runner and a container created from it, not started.
        staged = runner_bridge.create_instance_container(
            pool, snapshot, instance.id, pool_dir(pool) / f"guard-{instance.id}", start=False
        )
    else:
        staged = stage_instance(snapshot, pool_dir(pool) / f"staged-{instance.id}")
    return status.instance_staged(instance, path=str(staged.path), size_bytes=staged.size_bytes)


def _retire(pool: WarmPool, instance: PoolInstance) -> None:
    """Remove an idle instance, unless a claim took it meanwhile (the conditional write first)."""
    if status.instance_retired(pool, instance):
        _remove(pool, instance.path)


def _remove(pool: WarmPool, path: str) -> None:
    """An instance's container (with its writable layer and guard folder) or its folder."""
    if runner_instances.is_container_instance(path):
        runner_bridge.remove_instance_container(pool.organization_id, path)
        runner_instances.remove(pool_dir(pool) / f"guard-{path.removeprefix('instance-')}")
    else:
        runner_instances.remove(Path(path))


def _engine_containers(pool: WarmPool) -> dict[str, str] | None:
    """The pool's instance containers from the engine (name -> state), or None for a pool of folders
    (no podman is asked then)."""
    if not runner_bridge.uses_containers(pool) and not any(
        runner_instances.is_container_instance(path)
        for path in PoolInstance.objects.filter(pool=pool).values_list("path", flat=True)
    ):
        return None
    return runner_bridge.pool_containers(pool)


def _exists(state: str, path: str, containers: dict[str, str] | None) -> bool:
    """Whether an idle instance really exists as its state says: a running instance's container is
    running, a stopped one's is created (or stopped); a folder instance's folder is there."""
    if not runner_instances.is_container_instance(path):
        return Path(path).exists()
    engine_state = (containers or {}).get(path)
    if state == InstanceState.RUNNING:
        return engine_state == "running"
    return engine_state in {"created", "exited", "stopped", "configured"}


def _forget_vanished(pool: WarmPool) -> None:
    """An instance whose files or container are gone (disk wiped, manual cleanup, a container that
    exited) no longer exists; a container left in the wrong state is removed."""
    containers = _engine_containers(pool)
    for instance in PoolInstance.objects.filter(pool=pool, state__in=[InstanceState.RUNNING, InstanceState.STOPPED]):
        if not _exists(instance.state, instance.path, containers):
            status.instance_vanished(instance)
            if runner_instances.is_container_instance(instance.path) and instance.path in (containers or {}):
                _remove(pool, instance.path)


def _drain(pool: WarmPool) -> WarmPool:
    if pool.phase != WarmPoolPhase.DELETING:
        pool = status.warm_pool_set_status(pool=pool, phase=WarmPoolPhase.DELETING)
    for instance in PoolInstance.objects.filter(pool=pool, state__in=[InstanceState.RUNNING, InstanceState.STOPPED]):
        _retire(pool, instance)
    pool = _write_status(pool, WarmPoolPhase.DELETING, 0, "")
    return status.warm_pool_set_status(pool=pool, phase=WarmPoolPhase.DELETED)


def _write_status(pool: WarmPool, phase: int, target: int, failure_message: str) -> WarmPool:
    """Status from what exists on the runner: folders on its disk, containers in its engine (by the
    pool's label, in the state the engine reports; the database only says which are still idle,
    not handed out)."""
    live = PoolInstance.objects.filter(pool=pool, state__in=[InstanceState.RUNNING, InstanceState.STOPPED])
    containers = _engine_containers(pool)
    running = stopped = 0
    for state, path in live.values_list("state", "path"):
        if _exists(state, path, containers):
            running += state == InstanceState.RUNNING
            stopped += state == InstanceState.STOPPED
    fresh = WarmPool.objects.get(id=pool.id)
    return status.warm_pool_set_status(
        pool=fresh,
        phase=phase,
        running_instances=running,
        stopped_instances=stopped,
        status_desired_size=target,
        failure_message=failure_message,
    )


def is_settled(pool: WarmPool, newest_snapshot_id, instances: list[tuple], recent_demand: int, now) -> bool:
    """Whether a pass over `pool` would change nothing: the cheap test that lets the periodic pass
    skip idle pools. `instances` are its (state, path, snapshot_id) that should exist."""
    if pool.desired_phase == WarmPoolPhase.DELETED or newest_snapshot_id != pool.snapshot_id:
        return False
    target = autoscale.next_target(pool, now, recent_demand)
    if target != pool.status_desired_size:
        return False
    if pool.snapshot_id is None:
        return pool.phase == WarmPoolPhase.PENDING and not instances and pool.running_instances == 0
    if pool.next_attempt_at and pool.next_attempt_at > now:
        return True  # backing off after a failure: the pass after the backoff retries
    if pool.phase != WarmPoolPhase.READY:
        return False
    running = stopped = 0
    for state, path, snapshot_id in instances:
        if runner_instances.is_container_instance(path):
            return False  # only the engine knows whether a container still runs: the pass asks it
        if snapshot_id != pool.snapshot_id or not Path(path).exists():
            return False
        running += state == InstanceState.RUNNING
        stopped += state == InstanceState.STOPPED
    return (
        (running, stopped)
        == (target, max(0, pool.max_size - target))
        == (
            pool.running_instances,
            pool.stopped_instances,
        )
    )


# A container younger than this may be one a pass is creating right now (its row is written once
# it exists): the sweep leaves it for the next pass.
ORPHAN_GRACE = timedelta(minutes=2)


def sweep_orphans(organization_id, *, now: datetime, grace: timedelta = ORPHAN_GRACE) -> list[str]:
    """Remove the organization's instance and environment containers that belong to nothing: an
    instance no longer idle nor handed to a live environment, an environment that is gone. Returns
    the names removed."""
    owned = runner_bridge.owned_containers(organization_id)
    if not owned:
        return []
    instance_ids = {labels.get(runner_instances.INSTANCE_LABEL) for _, labels, _ in owned} - {None}
    environment_ids = {labels.get(runner_instances.ENVIRONMENT_LABEL) for _, labels, _ in owned} - {None}
    idle = set(
        PoolInstance.objects.filter(
            id__in=instance_ids, state__in=[InstanceState.RUNNING, InstanceState.STOPPED]
        ).values_list("id", flat=True)
    )
    live = Environment.objects.exclude(phase=EnvironmentPhase.DELETED)
    claimed = set(live.filter(instance_id__in=instance_ids).values_list("instance_id", flat=True))
    alive = set(live.filter(id__in=environment_ids).values_list("id", flat=True))
    keep = {str(i) for i in idle | claimed | alive}
    removed = []
    for name, labels, created in owned:
        owner = labels.get(runner_instances.INSTANCE_LABEL) or labels.get(runner_instances.ENVIRONMENT_LABEL)
        if owner in keep or created is None or created > (now - grace).timestamp():
            continue
        runner_bridge.remove_instance_container(organization_id, name)
        removed.append(name)
    return removed


def reconcile_pass(runner_id=None, *, now: datetime | None = None) -> int:
    """The periodic pass over every live pool (of one runner): a few bulk queries find the pools
    that have something to do, and only those get a full reconcile. Returns how many did."""
    now = now or timezone.now()
    pools = list(WarmPool.objects.not_deleted().filter(**({"runner_id": runner_id} if runner_id else {})))
    if not pools:
        return 0
    pairs = {(p.project_id, p.environment_class_id) for p in pools}
    project_ids = {project for project, _ in pairs}
    newest: dict[tuple, object] = {}
    completed = (
        Prebuild.objects.filter(project_id__in=project_ids, phase=PrebuildPhase.COMPLETED)
        .order_by("-completion_time", "-created_at")
        .values_list("project_id", "environment_class_id", "id")
    )
    for project_id, class_id, prebuild_id in completed:
        newest.setdefault((project_id, class_id), prebuild_id)
    live: dict = {p.id: [] for p in pools}
    for pool_id, state, path, snapshot_id in PoolInstance.objects.filter(
        pool_id__in=live, state__in=[InstanceState.RUNNING, InstanceState.STOPPED]
    ).values_list("pool_id", "state", "path", "snapshot_id"):
        live[pool_id].append((state, path, snapshot_id))
    demand = {
        (row["project_id"], row["environment_class_id"]): row["n"]
        for row in Environment.objects.filter(project_id__in=project_ids, created_at__gte=now - autoscale.DEMAND_WINDOW)
        .values("project_id", "environment_class_id")
        .annotate(n=Count("id"))
        .order_by()
    }
    for runner in Runner.objects.filter(id__in={p.runner_id for p in pools}, backend=RunnerBackend.PODMAN):
        try:
            sweep_orphans(runner.organization_id, now=now)
        except (RunnerError, OSError) as exc:
            log.warning("cannot sweep orphan containers of runner %s: %s", runner.id, exc)
    reconciled = 0
    for pool in pools:
        pair = (pool.project_id, pool.environment_class_id)
        if not is_settled(pool, newest.get(pair), live[pool.id], demand.get(pair, 0), now):
            reconcile(pool.id, now=now)
            reconciled += 1
    return reconciled
