"""Warm pools holding real workspaces restored from real snapshots (prebuilds run in-process here:
the same execution code a worker runs, with real git, sandbox and store)."""

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from prebuilds import execution
from prebuilds import services as prebuild_services
from prebuilds.models import PrebuildPhase
from projects import runner_bridge
from projects import services as project_services
from warmpools import environments, reconciler, services
from warmpools.models import (
    Environment,
    EnvironmentPhase,
    EnvironmentSource,
    InstanceState,
    PoolInstance,
    WarmPool,
    WarmPoolPhase,
)

pytestmark = pytest.mark.slow


def tree(root: Path) -> dict:
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and not path.is_symlink():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def completed_prebuild(org, sample_repo):
    """Run real prebuilds of the project's default pair; each call makes a new snapshot."""
    repo = sample_repo("ok", "--files", "30")
    project_services.project_update(actor=org.admin, project=org.project, repository_url=str(repo))

    def make():
        prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
        execution.execute(str(prebuild.id))
        prebuild.refresh_from_db()
        assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
        return prebuild

    return make


def make_pool(org, **sizes):
    return services.warm_pool_create(actor=org.admin, project=org.project, environment_class_id=org.small.id, **sizes)


def running(pool):
    return list(PoolInstance.objects.filter(pool=pool, state=InstanceState.RUNNING))


def restored_tree_of(prebuild, tmp_path):
    from runner.snapshot import restore_snapshot

    dest = tmp_path / f"expected-{prebuild.id}"
    restore_snapshot(runner_bridge.snapshot_store(), str(prebuild.id), dest, expected_sha256=prebuild.snapshot_sha256)
    return tree(dest)


@pytest.mark.django_db
def test_a_pool_of_two_becomes_ready_with_two_restored_instances(org, completed_prebuild, tmp_path):
    pool = make_pool(org, min_size=2, max_size=2)
    pool = reconciler.reconcile(pool.id)
    assert (pool.phase, pool.running_instances) == (WarmPoolPhase.PENDING, 0)  # no snapshot yet
    prebuild = completed_prebuild()
    pool = reconciler.reconcile(pool.id)
    assert pool.phase == WarmPoolPhase.READY, pool.failure_message
    assert (pool.running_instances, pool.stopped_instances, pool.status_desired_size) == (2, 0, 2)
    assert pool.snapshot_id == prebuild.id
    expected = restored_tree_of(prebuild, tmp_path)
    assert ".prebuilt-at" in expected
    for instance in running(pool):
        assert tree(Path(instance.path)) == expected


@pytest.mark.django_db
def test_stopped_instances_are_staged_archives_and_start_from_disk(org, completed_prebuild):
    completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=1, max_size=3).id)
    assert (pool.running_instances, pool.stopped_instances) == (1, 2)
    stopped = PoolInstance.objects.filter(pool=pool, state=InstanceState.STOPPED)
    running_size = running(pool)[0].size_bytes
    for instance in stopped:
        files = list(Path(instance.path).iterdir())
        assert [f.suffixes for f in files] == [[".tar", ".zst"]]  # compressed, not unpacked
        assert instance.size_bytes < running_size  # cheaper to keep
    # Resizing up turns staged instances into running ones.
    services.warm_pool_update(actor=org.admin, pool=pool, min_size=3)
    pool = reconciler.reconcile(pool.id)
    assert (pool.running_instances, pool.stopped_instances) == (3, 0)
    assert {i.id for i in stopped} <= {i.id for i in running(pool)}


@pytest.mark.django_db(transaction=True)
def test_rotation_builds_new_instances_before_retiring_old_ones(org, completed_prebuild):
    first = completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=2, max_size=2).id)
    assert pool.running_instances == 2
    second = completed_prebuild()
    samples = []
    done = threading.Event()

    def rotate():
        try:
            reconciler.reconcile(pool.id)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=rotate)
    thread.start()
    while not done.is_set():
        live = PoolInstance.objects.filter(pool=pool, state=InstanceState.RUNNING).values_list("path", flat=True)
        samples.append(sum(Path(p).exists() for p in live))
        time.sleep(0.005)
    thread.join()
    pool.refresh_from_db()
    assert len(samples) > 3
    assert min(samples) >= 2, samples  # capacity never fell below min during the rotation
    assert max(samples) > 2  # new instances existed beside the old ones
    assert pool.snapshot_id == second.id
    assert {i.snapshot_id for i in running(pool)} == {second.id}
    assert not PoolInstance.objects.filter(snapshot=first, state=InstanceState.RUNNING).exists()


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_claims_against_a_pool_of_five(org, completed_prebuild):
    completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=5, max_size=5).id)
    assert pool.running_instances == 5
    barrier = threading.Barrier(20)

    def claim(_):
        try:
            barrier.wait()
            return services.environment_create(actor=org.member, project=org.project)
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as executor:
        created = list(executor.map(claim, range(20)))
    sources = [e.source for e in created]
    assert sources.count(EnvironmentSource.POOL) == 5
    assert sources.count(EnvironmentSource.SNAPSHOT) == 15
    handed_out = [e.instance_id for e in created if e.instance_id]
    assert len(set(handed_out)) == 5  # no instance handed out twice
    pool.refresh_from_db()
    assert (pool.hits, pool.misses) == (5, 15)
    pool = reconciler.reconcile(pool.id)  # the backfill
    assert pool.running_instances == 5
    assert not set(handed_out) & {i.id for i in running(pool)}


@pytest.mark.django_db
def test_a_claimed_instance_is_a_ready_environment_at_once(org, completed_prebuild, tmp_path):
    prebuild = completed_prebuild()
    reconciler.reconcile(make_pool(org, min_size=1, max_size=1).id)
    environment = services.environment_create(actor=org.member, project=org.project)
    assert (environment.source, environment.phase) == (EnvironmentSource.POOL, EnvironmentPhase.READY)
    assert environment.ready_after_ms is not None and environment.creator == org.member
    assert tree(Path(environment.path)) == restored_tree_of(prebuild, tmp_path)
    # Deleting it removes its workspace.
    services.environment_delete(actor=org.member, environment=environment)
    environments.remove(environment.id)
    assert not Path(environment.path).exists()
    assert Environment.objects.get(id=environment.id).phase == EnvironmentPhase.DELETED


@pytest.mark.django_db
def test_without_a_pool_an_environment_restores_the_snapshot_or_builds_cold(org, sample_repo, completed_prebuild):
    cold = services.environment_create(actor=org.member, project=org.project)
    assert (cold.source, cold.phase) == (EnvironmentSource.COLD, EnvironmentPhase.CREATING)
    cold = environments.build(cold.id)
    assert cold.phase == EnvironmentPhase.READY, cold.failure_message
    assert (Path(cold.path) / ".prebuilt-at").exists()  # the lifecycle ran
    assert not (Path(cold.path) / ".post-create-ran").exists()
    completed_prebuild()
    restored = environments.build(services.environment_create(actor=org.member, project=org.project).id)
    assert (restored.source, restored.phase) == (EnvironmentSource.SNAPSHOT, EnvironmentPhase.READY)
    assert restored.ready_after_ms > 0


@pytest.mark.django_db
def test_resizing_down_removes_only_idle_instances_and_zero_drains(org, completed_prebuild):
    completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=3, max_size=3).id)
    claimed = services.environment_create(actor=org.member, project=org.project)
    pool = services.warm_pool_update(actor=org.admin, pool=pool, min_size=0, max_size=1)
    pool = reconciler.reconcile(pool.id)
    assert pool.running_instances <= 1
    assert Path(claimed.path).exists()  # the claimed instance is an environment: untouched
    pool = services.warm_pool_update(actor=org.admin, pool=pool, min_size=0, max_size=0)
    pool = reconciler.reconcile(pool.id)
    assert (pool.running_instances, pool.stopped_instances, pool.status_desired_size) == (0, 0, 0)
    assert pool.phase == WarmPoolPhase.READY
    assert Path(claimed.path).exists()


@pytest.mark.django_db
def test_delete_drains_every_instance_then_deleted(org, completed_prebuild):
    completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=1, max_size=3).id)
    paths = list(PoolInstance.objects.filter(pool=pool).values_list("path", flat=True))
    assert len(paths) == 3
    services.warm_pool_delete(actor=org.admin, pool=pool)
    pool = reconciler.reconcile(pool.id)
    assert pool.phase == WarmPoolPhase.DELETED
    assert (pool.running_instances, pool.stopped_instances) == (0, 0)
    assert not any(Path(p).exists() for p in paths)


@pytest.mark.django_db
def test_a_corrupt_snapshot_degrades_the_pool_until_it_is_repaired(org, completed_prebuild):
    prebuild = completed_prebuild()
    archive = runner_bridge.snapshot_store()._path(str(prebuild.id))
    good = archive.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    archive.write_bytes(bytes(bad))
    pool = reconciler.reconcile(make_pool(org, min_size=1, max_size=1).id)
    assert pool.phase == WarmPoolPhase.DEGRADED
    assert "checksum mismatch" in pool.failure_message and str(prebuild.id) in pool.failure_message
    assert "retrying in 5s" in pool.failure_message
    assert pool.running_instances == 0
    # The next pass waits for the backoff; then, with the snapshot repaired, it recovers by itself.
    assert reconciler.reconcile(pool.id).phase == WarmPoolPhase.DEGRADED
    archive.write_bytes(good)
    WarmPool.objects.filter(id=pool.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    pool = reconciler.reconcile(pool.id)
    assert (pool.phase, pool.failure_message, pool.running_instances) == (WarmPoolPhase.READY, "", 1)


@pytest.mark.django_db
def test_a_missing_snapshot_degrades_the_pool(org, completed_prebuild):
    prebuild = completed_prebuild()
    runner_bridge.snapshot_store().delete(str(prebuild.id))
    pool = reconciler.reconcile(make_pool(org, min_size=1, max_size=1).id)
    assert pool.phase == WarmPoolPhase.DEGRADED
    assert "does not exist" in pool.failure_message


@pytest.mark.django_db
def test_instances_whose_files_vanish_are_not_counted(org, completed_prebuild):
    completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=2, max_size=2).id)
    victim = running(pool)[0]
    from runner.instances import remove

    remove(Path(victim.path))
    pool = reconciler.reconcile(pool.id)
    assert pool.running_instances == 2  # counted from disk, then rebuilt
    assert PoolInstance.objects.get(id=victim.id).state == InstanceState.RETIRED


@pytest.mark.django_db
def test_pool_metrics_count_hits_misses_latency_age_and_idle_time(org, completed_prebuild):
    from warmpools.metrics import pool_metrics

    prebuild = completed_prebuild()
    pool = reconciler.reconcile(make_pool(org, min_size=1, max_size=1).id)
    hit = services.environment_create(actor=org.member, project=org.project)
    miss = environments.build(services.environment_create(actor=org.member, project=org.project).id)
    pool.refresh_from_db()
    later = prebuild.completion_time + timedelta(hours=2)
    metrics = pool_metrics(pool, now=later)
    assert (metrics.hits, metrics.misses) == (1, 1)
    assert metrics.claim_latency_p50_ms == min(hit.ready_after_ms, miss.ready_after_ms)
    assert metrics.claim_latency_p95_ms == max(hit.ready_after_ms, miss.ready_after_ms)
    assert metrics.snapshot_age == timedelta(hours=2)
    assert metrics.idle_instance_hours > 0


@pytest.mark.django_db
def test_the_periodic_pass_skips_settled_pools_and_reconciles_the_rest(org, completed_prebuild):
    completed_prebuild()
    settled = reconciler.reconcile(make_pool(org, min_size=1, max_size=1).id)
    other = services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.large.id, min_size=0, max_size=0
    )
    assert reconciler.reconcile_pass() == 0  # both settled: one READY, one PENDING without a snapshot
    other.refresh_from_db()
    assert other.phase == WarmPoolPhase.PENDING
    settled = services.warm_pool_update(actor=org.admin, pool=settled, max_size=2, min_size=2)
    assert reconciler.reconcile_pass() == 1  # the resized one has work
    assert reconciler.reconcile_pass() == 0
    from runner.instances import remove

    remove(Path(running(settled)[0].path))  # an instance vanished: the pass notices
    assert reconciler.reconcile_pass() == 1
    settled.refresh_from_db()
    assert settled.running_instances == 2
