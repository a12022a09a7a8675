import pytest

from core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.models import PrebuildPhase
from projects import services as project_services
from warmpools import reconciler, services, status
from warmpools.models import WarmPool, WarmPoolPhase
from warmpools.phases import ALLOWED_TRANSITIONS

pytestmark = pytest.mark.django_db


def create(org, **kwargs):
    kwargs.setdefault("actor", org.admin)
    kwargs.setdefault("project", org.project)
    kwargs.setdefault("environment_class_id", org.small.id)
    return services.warm_pool_create(**kwargs)


def test_create_with_min_and_max(org):
    pool = create(org, min_size=1, max_size=3)
    assert (pool.min_size, pool.max_size) == (1, 3)
    assert pool.phase == WarmPoolPhase.PENDING  # no snapshot yet
    assert pool.runner == org.runner
    assert pool.snapshot is None
    assert pool.status_desired_size == 1


def test_desired_size_alone_means_min_equals_max(org):
    pool = create(org, desired_size=2)
    assert (pool.min_size, pool.max_size, pool.desired_size) == (2, 2, 2)


def test_max_alone_allows_scaling_to_zero(org):
    pool = create(org, max_size=4)
    assert (pool.min_size, pool.max_size) == (0, 4)


# Each size's own range (0..20, 1..20) is the request's rule (its descriptor's), checked on the request
# message by every interface (tests/warmpools/test_size_limit.py); what no descriptor can say is here.
@pytest.mark.parametrize(("sizes", "field"), [({}, "max_size"), ({"min_size": 3, "max_size": 2}, "min_size")])
def test_create_rejects_bad_sizes(org, sizes, field):
    with pytest.raises(InvalidArgument) as exc:
        create(org, **sizes)
    assert exc.value.field == field
    assert not WarmPool.objects.exists()


def test_create_refuses_a_disabled_class_as_create_prebuild_does(org):
    org.small.enabled = False
    org.small.save()
    with pytest.raises(FailedPrecondition, match="disabled") as exc:
        create(org, max_size=1)
    assert exc.value.field == "environment_class_id"
    assert not WarmPool.objects.exists()


def test_an_update_that_changes_nothing_writes_nothing(org):
    pool = create(org, min_size=1, max_size=3)
    for sizes in ({}, {"min_size": 1}, {"min_size": 1, "max_size": 3}):
        pool = services.warm_pool_update(actor=org.admin, pool=pool, **sizes)
        assert WarmPool.objects.get(pk=pool.pk).spec_version == 1, sizes
    pool = services.warm_pool_update(actor=org.admin, pool=pool, max_size=4)
    assert (WarmPool.objects.get(pk=pool.pk).spec_version, pool.max_size) == (2, 4)


def test_one_pool_per_pair(org):
    create(org, max_size=1)
    with pytest.raises(AlreadyExists):
        create(org, max_size=2)
    assert WarmPool.objects.count() == 1


def test_a_deleted_pool_frees_its_pair(org):
    pool = create(org, max_size=1)
    services.warm_pool_delete(actor=org.admin, pool=pool)
    reconciler.reconcile(pool.id)
    assert WarmPool.objects.get(id=pool.id).phase == WarmPoolPhase.DELETED
    assert create(org, max_size=2).max_size == 2


def test_class_must_get_prebuilds_on_the_project(org):
    with pytest.raises(FailedPrecondition):
        create(org, environment_class_id=org.unconfigured.id, max_size=1)
    project_services.project_update(actor=org.admin, project=org.project, prebuilds_enabled=False)
    with pytest.raises(FailedPrecondition):
        create(org, max_size=1)


def test_only_admins_manage_pools(org):
    with pytest.raises(PermissionDenied):
        create(org, actor=org.member, max_size=1)
    with pytest.raises(NotFound):
        create(org, actor=org.outsider, max_size=1)
    pool = create(org, max_size=1)
    with pytest.raises(PermissionDenied):
        services.warm_pool_update(actor=org.member, pool=pool, max_size=3)
    with pytest.raises(PermissionDenied):
        services.warm_pool_delete(actor=org.member, pool=pool)


def test_resize_keeps_absent_fields_and_bumps_spec_version(org):
    pool = create(org, min_size=1, max_size=3)
    pool = services.warm_pool_update(actor=org.admin, pool=pool, max_size=5)
    assert (pool.min_size, pool.max_size, pool.spec_version) == (1, 5, 2)
    pool = services.warm_pool_update(actor=org.admin, pool=pool, desired_size=4)
    assert (pool.min_size, pool.max_size, pool.spec_version) == (4, 4, 3)
    with pytest.raises(InvalidArgument):
        services.warm_pool_update(actor=org.admin, pool=pool, min_size=6)
    pool.refresh_from_db()
    assert (pool.min_size, pool.max_size, pool.spec_version) == (4, 4, 3)


def test_resize_to_zero_is_allowed(org):
    pool = services.warm_pool_update(actor=org.admin, pool=create(org, max_size=2), min_size=0, max_size=0)
    assert (pool.min_size, pool.max_size) == (0, 0)


def test_delete_marks_and_is_idempotent(org):
    pool = services.warm_pool_delete(actor=org.admin, pool=create(org, max_size=2))
    assert pool.desired_phase == WarmPoolPhase.DELETED
    assert pool.phase == WarmPoolPhase.DELETING
    again = services.warm_pool_delete(actor=org.admin, pool=pool)
    assert again.spec_version == pool.spec_version
    with pytest.raises(FailedPrecondition):
        services.warm_pool_update(actor=org.admin, pool=pool, max_size=3)


def test_a_pool_starts_from_the_newest_completed_prebuild(org):
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    prebuild = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    for phase in (PrebuildPhase.RUNNING, PrebuildPhase.STOPPING, PrebuildPhase.SNAPSHOTTING, PrebuildPhase.COMPLETED):
        prebuild = prebuild_status.prebuild_set_status(prebuild=prebuild, phase=phase)
    assert create(org, max_size=1).snapshot_id == prebuild.id


ALL = [p for p in WarmPoolPhase if p != WarmPoolPhase.UNSPECIFIED]
ILLEGAL = [(a, b) for a in ALL for b in ALL if a != b and b not in ALLOWED_TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "new"), ILLEGAL, ids=[f"{a.name}->{b.name}" for a, b in ILLEGAL])
def test_every_illegal_pool_transition_is_rejected(org, current, new):
    pool = create(org, max_size=1)
    WarmPool.objects.filter(id=pool.id).update(phase=current)
    pool.refresh_from_db()
    with pytest.raises(FailedPrecondition):
        status.warm_pool_set_status(pool=pool, phase=new)
    pool.refresh_from_db()
    assert (pool.phase, pool.status_version) == (current, 1)
