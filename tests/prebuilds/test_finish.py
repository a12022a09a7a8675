"""How a runner's last word lands when the prebuild changed under it while it finished."""

import pytest

from prebuilds import execution, services, status
from prebuilds.models import PrebuildPhase
from projects import runner_bridge
from runner.errors import StopReason
from runner.executor import PrebuildOutcome, PrebuildResult
from runner.snapshot import SnapshotInfo

pytestmark = pytest.mark.django_db

P = PrebuildPhase
COMPLETED = PrebuildOutcome(
    result=PrebuildResult.COMPLETED,
    commit_id="abc",
    snapshot=SnapshotInfo(size_bytes=10, sha256="0" * 64, file_count=1, source_bytes=5),
)


@pytest.fixture
def snapshotting(org):
    prebuild = status.prebuild_claim(prebuild_id=services.prebuild_create(actor=org.member, project=org.project).id)
    for phase in (P.RUNNING, P.STOPPING, P.SNAPSHOTTING):
        prebuild = status.prebuild_set_status(prebuild=prebuild, phase=phase)
    return prebuild


def test_a_cancel_that_arrives_while_the_snapshot_is_finished_ends_cancelled(org, snapshotting):
    # What the runner's reporter does when it sees the request: the prebuild shows Cancelling.
    services.prebuild_cancel(actor=org.member, prebuild=snapshotting)
    prebuild = status.prebuild_set_status(prebuild=snapshotting, phase=P.CANCELLING)
    store = runner_bridge.snapshot_store()
    with store.open_writer(str(prebuild.id)) as writer:  # the snapshot was done all the same
        writer.write(b"snapshot")
    execution.finish(prebuild, COMPLETED, StopReason.CANCELLED)
    prebuild.refresh_from_db()
    assert prebuild.phase == P.CANCELLED and prebuild.snapshot_size_bytes is None
    assert not store.exists(str(prebuild.id))


def test_a_prebuild_the_reaper_took_keeps_the_reapers_word(org, snapshotting):
    status.prebuild_set_status(prebuild=snapshotting, phase=P.FAILED, failure_message="runner lost")
    execution.finish(snapshotting, COMPLETED, None)  # the stale object still says Snapshotting
    snapshotting.refresh_from_db()
    assert (snapshotting.phase, snapshotting.failure_message) == (P.FAILED, "runner lost")
