"""Rotation moves a pool onto a newer snapshot, never back onto an older one (completion signals
can arrive out of order: the older prebuild's signal after the newer one's)."""

from datetime import UTC, datetime, timedelta

import pytest

from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.models import PrebuildPhase
from warmpools import services
from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db

T = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)


def completed_at(org, when):
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    for phase in (PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
        prebuild = prebuild_status.prebuild_set_status(prebuild=prebuild, phase=phase)
    return prebuild_status.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.COMPLETED, completion_time=when)


def test_a_pool_moves_forward_and_never_back(org):
    older = completed_at(org, T)
    newer = completed_at(org, T + timedelta(minutes=5))
    pool = services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, max_size=1
    )
    assert pool.snapshot_id == newer.id  # created on the newest

    pool = services.warm_pool_set_snapshot(pool=pool, snapshot=older)  # a late signal
    stored = WarmPool.objects.get(id=pool.id)
    assert (stored.snapshot_id, stored.spec_version) == (newer.id, 1)

    newest = completed_at(org, T + timedelta(minutes=10))
    services.warm_pool_set_snapshot(pool=stored, snapshot=newest)
    stored = WarmPool.objects.get(id=pool.id)
    assert (stored.snapshot_id, stored.spec_version) == (newest.id, 2)
