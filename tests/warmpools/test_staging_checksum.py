"""A pool stages stopped instances (the snapshot's archive copied to the runner's disk) only from
an archive that matches the checksum its prebuild recorded: a corrupt archive makes the pool
DEGRADED with a message saying so, and nothing half-staged is left behind. Staging copies bytes
in this process (no tar, no zstd), so no process starts here."""

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.models import PrebuildPhase
from projects.runner_bridge import snapshot_store
from runner._fs import cleanup_tree
from warmpools import reconciler, services
from warmpools.models import InstanceState, PoolInstance, WarmPool, WarmPoolPhase

pytestmark = pytest.mark.django_db


def archive() -> bytes:
    """A small snapshot in the store's format: a tar stream compressed with zstd."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        data = b"print('hello')\n" * 200
        info = tarfile.TarInfo("app/main.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw.getvalue())


@pytest.fixture
def snapshot(org):
    """A completed prebuild of (app, small) whose archive is in the snapshot store."""
    data = archive()
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    with snapshot_store().open_writer(str(prebuild.id)) as out:
        out.write(data)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    for phase in (PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
        prebuild = prebuild_status.prebuild_set_status(prebuild=prebuild, phase=phase)
    prebuild = prebuild_status.prebuild_set_status(
        prebuild=prebuild,
        phase=PrebuildPhase.COMPLETED,
        snapshot_sha256=hashlib.sha256(data).hexdigest(),
        snapshot_size_bytes=len(data),
    )
    yield prebuild
    snapshot_store().delete(str(prebuild.id))


@pytest.fixture(autouse=True)
def _remove_staged_copies():
    yield
    for pool in WarmPool.objects.all():
        cleanup_tree(reconciler.pool_dir(pool))


def stopped_only_pool(org):
    # min 0 and no demand: the target is 0 running, so the pass only stages (max_size stopped).
    return services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=0, max_size=2
    )


def corrupt(prebuild) -> None:
    path = snapshot_store().root / f"{prebuild.id}.tar.zst"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different
    path.write_bytes(bytes(data))


def test_an_intact_snapshot_is_staged(org, snapshot):
    pool = reconciler.reconcile(stopped_only_pool(org).id)
    assert (pool.phase, pool.stopped_instances, pool.running_instances) == (WarmPoolPhase.READY, 2, 0)
    staged = PoolInstance.objects.filter(pool=pool, state=InstanceState.STOPPED)
    assert staged.count() == 2
    for instance in staged:
        [copy] = Path(instance.path).glob("*.tar.zst")
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == snapshot.snapshot_sha256


def test_a_corrupt_snapshot_is_not_staged(org, snapshot):
    corrupt(snapshot)
    pool = reconciler.reconcile(stopped_only_pool(org).id)
    stored = WarmPool.objects.get(id=pool.id)
    assert (stored.phase, stored.stopped_instances, stored.running_instances) == (WarmPoolPhase.DEGRADED, 0, 0)
    assert f"snapshot {snapshot.id} is corrupt: checksum mismatch" in stored.failure_message
    assert not PoolInstance.objects.filter(pool=pool, state=InstanceState.STOPPED).exists()
    pool_dir = reconciler.pool_dir(pool)
    assert not pool_dir.exists() or list(pool_dir.iterdir()) == []  # nothing half-staged stays
