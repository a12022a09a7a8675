"""Cancelling a running prebuild is asked once: the second cancel changes nothing, so the spec
stays at version 2 (created = 1, first cancel = 2) and the runner sees one request."""

import pytest

from prebuilds import services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(org):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    return prebuild_status.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.RUNNING)


def test_cancelling_a_running_prebuild_twice_leaves_spec_version_at_2(org, running):
    assert running.spec_version == 1
    first = services.prebuild_cancel(actor=org.member, prebuild=running)
    assert (first.spec_version, first.desired_phase, first.phase) == (2, PrebuildPhase.CANCELLED, PrebuildPhase.RUNNING)
    # A second caller holding the old copy asks again.
    second = services.prebuild_cancel(actor=org.member, prebuild=Prebuild.objects.get(id=running.id))
    stored = Prebuild.objects.get(id=running.id)
    assert (second.spec_version, stored.spec_version) == (2, 2)
    assert (stored.desired_phase, stored.phase, stored.status_version) == (
        PrebuildPhase.CANCELLED,
        PrebuildPhase.RUNNING,  # stopping it is the runner's job
        running.status_version,
    )
