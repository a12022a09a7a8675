"""Full disks on the runner (small tmpfs volumes that really run out of space): a prebuild fails with
a clear message when the snapshot store is full; a warm pool that cannot provision its instances
turns DEGRADED, and READY again by itself once space returns."""

import time

import pytest

from prebuilds import services
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase
from projects import services as project_services
from tests.processes.faults.conftest import wait_until
from warmpools import services as pool_services
from warmpools.models import WarmPool, WarmPoolPhase

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def finished(prebuild_id) -> Prebuild:
    return wait_until(
        lambda: (p := Prebuild.objects.get(id=prebuild_id)).phase in TERMINAL_PHASES and p, 120, "prebuild finishes"
    )


def test_a_full_snapshot_store_fails_the_prebuild_and_a_full_pool_disk_degrades_the_pool_until_space_returns(
    org, processes, make_runner, sample_repo, tmpfs
):
    snapshots, pools = tmpfs("snapshots", "4m"), tmpfs("pools", "2m")
    runner, environment_class = make_runner("disk")
    disk = {"SNAPSHOTS_DIR": snapshots.path, "POOLS_DIR": pools.path}
    processes.beat(**disk)
    processes.worker("control", "control", wait=False, **disk)
    processes.worker("runner", runner.queue, wait=False, **disk)
    processes.ready("control", "runner")
    repository = str(sample_repo("ok"))
    project = project_services.project_update(actor=org.admin, project=org.project, repository_url=repository)

    def prebuild():
        return services.prebuild_create(actor=org.member, project=project, environment_class_id=environment_class.id)

    snapshots.fill()
    failed = finished(prebuild().id)
    assert failed.phase == PrebuildPhase.FAILED
    assert failed.failure_message.startswith("snapshot store is full"), failed.failure_message
    assert "free space needed" in failed.failure_message
    assert not list(snapshots.path.glob("*.tar.zst")) and not list(snapshots.path.glob(".*.partial"))

    snapshots.free()
    completed = finished(prebuild().id)
    assert completed.phase == PrebuildPhase.COMPLETED, completed.failure_message

    pools.fill()
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=project, environment_class_id=environment_class.id, min_size=1, max_size=1
    )
    degraded = wait_until(
        lambda: (p := WarmPool.objects.get(id=pool.id)).phase == WarmPoolPhase.DEGRADED and p, 60, "pool DEGRADED"
    )
    # Says what happened (whether in the runner's words or tar's) and that it will try again.
    message = degraded.failure_message
    assert ("disk is full" in message or "No space left on device" in message) and "retrying in" in message, message
    print(f"pool degraded: {degraded.failure_message}")

    pools.free()
    freed_at = time.monotonic()
    # The reconciler's backoff, then the periodic pass (every 30 s) brings it back without help.
    ready = wait_until(
        lambda: (p := WarmPool.objects.get(id=pool.id)).phase == WarmPoolPhase.READY and p, 120, "pool READY again"
    )
    print(f"pool READY {time.monotonic() - freed_at:.1f}s after space returned")
    assert ready.running_instances == 1
    assert ready.failure_message == ""
