"""Retention keeps the newest completed prebuild of each (project, environment class), not one
per project: with old completed prebuilds on two classes of one project, each class keeps its
newest (a pool of either class still has a snapshot to warm)."""

from datetime import UTC, datetime, timedelta

import pytest

from prebuilds import maintenance, services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase

pytestmark = pytest.mark.django_db

CREATED = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def completed(org, environment_class, minutes):
    """A prebuild of the class that completed `minutes` after CREATED, as its runner reports it."""
    prebuild = services.prebuild_create(
        actor=org.member, project=org.project, environment_class_id=environment_class.id
    )
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    for phase in (PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
        prebuild = prebuild_status.prebuild_set_status(prebuild=prebuild, phase=phase)
    return prebuild_status.prebuild_set_status(
        prebuild=prebuild, phase=PrebuildPhase.COMPLETED, completion_time=CREATED + timedelta(minutes=minutes)
    )


def test_each_class_keeps_its_newest_completed_prebuild(org, time_machine, settings):
    time_machine.move_to(CREATED, tick=False)
    small = [completed(org, org.small, minutes) for minutes in (10, 30, 20)]
    large = [completed(org, org.large, minutes) for minutes in (5, 15)]
    # The large class's newest is older than every small one: one per project would delete it.
    later = CREATED + settings.PREBUILD_RETENTION + timedelta(days=1)

    assert maintenance.expire_prebuilds(now=later) == 3

    phases = dict(Prebuild.objects.values_list("id", "phase"))
    assert phases[small[1].id] == PrebuildPhase.COMPLETED  # small's newest (30)
    assert phases[large[1].id] == PrebuildPhase.COMPLETED  # large's newest (15)
    assert [phases[p.id] for p in (small[0], small[2], large[0])] == [PrebuildPhase.DELETING] * 3
    assert maintenance.expire_prebuilds(now=later) == 0  # the kept ones stay kept
