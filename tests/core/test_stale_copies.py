"""Compare-and-swap on a stale copy, without threads: a writer holding a copy read before someone
else's write must not overwrite that write. Deterministic on any database, which the threaded
tests in test_concurrency.py are not on SQLite (its lock serializes the writers)."""

import pytest

from core.errors import FailedPrecondition
from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase
from warmpools import services as pool_services
from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db


def test_a_resize_from_a_stale_copy_keeps_the_other_resize(org):
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=1, max_size=3
    )
    stale = WarmPool.objects.get(id=pool.id)  # read by the second writer before the first writes
    pool_services.warm_pool_update(actor=org.admin, pool=WarmPool.objects.get(id=pool.id), max_size=5)
    pool_services.warm_pool_update(actor=org.admin, pool=stale, min_size=2)
    stored = WarmPool.objects.get(id=pool.id)
    # The second writer changed min only; the first writer's max stays.
    assert (stored.min_size, stored.max_size, stored.spec_version) == (2, 5, 3)


def test_a_worker_holding_an_old_copy_cannot_revive_a_prebuild_the_reaper_failed(org):
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    worker_copy = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)  # STARTING
    prebuild_status.prebuild_set_status(
        prebuild=Prebuild.objects.get(id=prebuild.id), phase=PrebuildPhase.FAILED, failure_message="runner lost"
    )
    with pytest.raises(FailedPrecondition):
        prebuild_status.prebuild_set_status(prebuild=worker_copy, phase=PrebuildPhase.RUNNING)
    stored = Prebuild.objects.get(id=prebuild.id)
    assert (stored.phase, stored.failure_message, stored.status_version) == (PrebuildPhase.FAILED, "runner lost", 3)
