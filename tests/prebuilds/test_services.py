from datetime import timedelta

import pytest

from core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from prebuilds import services, status
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildTrigger
from prebuilds.phases import ALLOWED_TRANSITIONS

pytestmark = pytest.mark.django_db


def create(org, **kwargs):
    kwargs.setdefault("actor", org.member)
    kwargs.setdefault("project", org.project)
    return services.prebuild_create(**kwargs)


def test_create_uses_project_default_class_and_one_hour_timeout(org):
    prebuild = create(org)
    assert prebuild.environment_class == org.small
    assert prebuild.timeout == timedelta(hours=1)
    assert prebuild.phase == PrebuildPhase.PENDING
    assert prebuild.triggered_by == PrebuildTrigger.MANUAL
    assert prebuild.creator == org.member
    assert (prebuild.spec_version, prebuild.status_version) == (1, 1)


def test_create_accepts_a_configured_class_and_timeout(org):
    prebuild = create(org, environment_class_id=str(org.large.id), timeout=timedelta(minutes=20))
    assert prebuild.environment_class == org.large
    assert prebuild.timeout == timedelta(minutes=20)


def test_create_rejects_a_class_without_prebuilds_on_the_project(org):
    with pytest.raises(FailedPrecondition) as exc:
        create(org, environment_class_id=org.unconfigured.id)
    assert exc.value.field == "environment_class_id"


def test_create_rejects_a_disabled_class(org):
    org.large.enabled = False
    org.large.save()
    with pytest.raises(FailedPrecondition, match="disabled"):
        create(org, environment_class_id=org.large.id)


def test_create_rejects_an_unknown_or_foreign_class(org):
    with pytest.raises(NotFound):
        create(org, environment_class_id="not-a-uuid")
    from projects import services as project_services

    foreign_runner = project_services.runner_create(organization=org.other, name="r", queue="q-other")
    foreign = project_services.environment_class_create(runner=foreign_runner, display_name="x")
    with pytest.raises(NotFound):
        create(org, environment_class_id=foreign.id)


def test_create_without_class_and_without_default_is_invalid(org):
    org.project.default_environment_class = None
    org.project.save()
    with pytest.raises(InvalidArgument) as exc:
        create(org)
    assert exc.value.field == "environment_class_id"


# The timeout's range (5 minutes to 2 hours) is PrebuildSpec.timeout's rule, checked on the request
# by every interface: tests/core/test_validation.py, tests/dashboard (REST, Connect), the list page.


def test_create_accepts_exactly_two_hours(org):
    assert create(org, timeout=timedelta(hours=2)).timeout == timedelta(hours=2)


def test_outsider_cannot_create_and_learns_nothing(org):
    with pytest.raises(NotFound):
        create(org, actor=org.outsider)
    assert not Prebuild.objects.exists()


def test_get_hides_other_organizations_and_deleted_prebuilds(org):
    prebuild = create(org)
    assert services.prebuild_get(user=org.member, prebuild_id=prebuild.id) == prebuild
    with pytest.raises(NotFound):
        services.prebuild_get(user=org.outsider, prebuild_id=prebuild.id)
    with pytest.raises(NotFound):
        services.prebuild_get(user=org.member, prebuild_id="garbage")
    Prebuild.objects.filter(id=prebuild.id).update(phase=PrebuildPhase.DELETED)
    with pytest.raises(NotFound):
        services.prebuild_get(user=org.member, prebuild_id=prebuild.id)


def test_cancel_pending_goes_straight_to_cancelled(org):
    prebuild = services.prebuild_cancel(actor=org.member, prebuild=create(org))
    assert prebuild.desired_phase == PrebuildPhase.CANCELLED
    assert prebuild.phase == PrebuildPhase.CANCELLED
    assert prebuild.completion_time is not None
    assert (prebuild.spec_version, prebuild.status_version) == (2, 2)


def test_cancel_running_only_asks_the_runner(org):
    prebuild = create(org)
    status.prebuild_claim(prebuild_id=prebuild.id)
    prebuild = services.prebuild_cancel(actor=org.member, prebuild=prebuild)
    prebuild.refresh_from_db()
    assert prebuild.desired_phase == PrebuildPhase.CANCELLED
    assert prebuild.phase == PrebuildPhase.STARTING  # the runner moves it on


def test_cancel_is_idempotent_and_leaves_finished_prebuilds_unchanged(org):
    prebuild = services.prebuild_cancel(actor=org.member, prebuild=create(org))
    again = services.prebuild_cancel(actor=org.member, prebuild=prebuild)
    assert (again.spec_version, again.status_version, again.phase) == (2, 2, PrebuildPhase.CANCELLED)

    finished = create(org)
    status.prebuild_claim(prebuild_id=finished.id)
    finished.refresh_from_db()
    finished = status.prebuild_set_status(prebuild=finished, phase=PrebuildPhase.FAILED, failure_message="x")
    unchanged = services.prebuild_cancel(actor=org.member, prebuild=finished)
    assert unchanged.phase == PrebuildPhase.FAILED
    assert unchanged.desired_phase == PrebuildPhase.UNSPECIFIED
    assert unchanged.spec_version == finished.spec_version


def test_a_cancelled_pending_prebuild_cannot_be_claimed(org):
    prebuild = create(org)
    Prebuild.objects.filter(id=prebuild.id).update(desired_phase=PrebuildPhase.CANCELLED)
    assert status.prebuild_claim(prebuild_id=prebuild.id) is None


def test_claim_happens_once(org):
    prebuild = create(org)
    assert status.prebuild_claim(prebuild_id=prebuild.id) is not None
    assert status.prebuild_claim(prebuild_id=prebuild.id) is None
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.STARTING
    assert prebuild.status_version == 2


def test_delete_needs_an_admin(org):
    prebuild = create(org)
    with pytest.raises(PermissionDenied):
        services.prebuild_delete(actor=org.member, prebuild=prebuild)
    with pytest.raises(NotFound):
        services.prebuild_delete(actor=org.outsider, prebuild=prebuild)


def test_delete_marks_for_deletion_and_is_idempotent(org):
    prebuild = services.prebuild_cancel(actor=org.member, prebuild=create(org))
    deleted = services.prebuild_delete(actor=org.admin, prebuild=prebuild)
    assert deleted.desired_phase == PrebuildPhase.DELETED
    assert deleted.phase == PrebuildPhase.DELETING
    again = services.prebuild_delete(actor=org.admin, prebuild=deleted)
    assert (again.spec_version, again.status_version) == (deleted.spec_version, deleted.status_version)


def test_delete_of_a_running_prebuild_leaves_stopping_to_the_runner(org):
    prebuild = create(org)
    status.prebuild_claim(prebuild_id=prebuild.id)
    prebuild.refresh_from_db()
    deleted = services.prebuild_delete(actor=org.admin, prebuild=prebuild)
    assert deleted.desired_phase == PrebuildPhase.DELETED
    assert deleted.phase == PrebuildPhase.STARTING


ALL_PHASES = [p for p in PrebuildPhase if p != PrebuildPhase.UNSPECIFIED]
ILLEGAL = [(a, b) for a in ALL_PHASES for b in ALL_PHASES if a != b and b not in ALLOWED_TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "new"), ILLEGAL, ids=[f"{a.name}->{b.name}" for a, b in ILLEGAL])
def test_every_illegal_transition_is_rejected(org, current, new):
    prebuild = create(org)
    Prebuild.objects.filter(id=prebuild.id).update(phase=current)
    prebuild.refresh_from_db()
    with pytest.raises(FailedPrecondition):
        status.prebuild_set_status(prebuild=prebuild, phase=new)
    prebuild.refresh_from_db()
    assert prebuild.phase == current
    assert prebuild.status_version == 1


def test_the_happy_path_walks_the_phases_and_bumps_status_version(org):
    prebuild = create(org)
    prebuild = status.prebuild_claim(prebuild_id=prebuild.id)
    for phase in (PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING):
        prebuild = status.prebuild_set_status(prebuild=prebuild, phase=phase)
    prebuild = status.prebuild_set_status(prebuild=prebuild, snapshot_completion_percentage=40)
    prebuild = status.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.COMPLETED, snapshot_size_bytes=10)
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.COMPLETED
    assert prebuild.status_version == 7
    assert prebuild.snapshot_completion_percentage is None  # only while SNAPSHOTTING
    assert prebuild.completion_time is not None
    assert prebuild.spec_version == 1  # the runner never touches the spec


def test_status_writes_refuse_unknown_fields(org):
    with pytest.raises(ValueError):
        status.prebuild_set_status(prebuild=create(org), desired_phase=PrebuildPhase.CANCELLED)
