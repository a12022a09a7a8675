"""A warm pool holds at most 20 instances: 20 is accepted, 21 refused, on create and on resize.

The refusal is the rule of the gitpod.v1 request messages (max_size, min_size and desired_size at
most 20), which every interface checks on the request it builds or receives (core.validation); the
service takes what passes it."""

import pytest
from gitpod.v1 import prebuild_pb2 as pb

from core.errors import InvalidArgument
from core.validation import validate
from warmpools import services
from warmpools.models import WarmPool
from warmpools.proto import with_sizes

ID = "3f1c5b0e-0000-4000-8000-000000000000"

pytestmark = pytest.mark.django_db


def create(org, **sizes):
    return services.warm_pool_create(actor=org.admin, project=org.project, environment_class_id=org.small.id, **sizes)


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [({"max_size": 20}, (0, 20)), ({"min_size": 20, "max_size": 20}, (20, 20)), ({"desired_size": 20}, (20, 20))],
)
def test_twenty_is_accepted_on_create(org, sizes, expected):
    pool = create(org, **sizes)
    assert (pool.min_size, pool.max_size) == expected
    assert WarmPool.objects.get(id=pool.id).max_size == 20


@pytest.mark.parametrize(
    ("sizes", "field"),
    [
        ({"max_size": 21}, "max_size"),
        ({"min_size": 21, "max_size": 20}, "min_size"),
        ({"desired_size": 21}, "desired_size"),
    ],
)
def test_twenty_one_is_refused_on_create(sizes, field):
    with pytest.raises(InvalidArgument, match="less than or equal to 20") as exc:
        validate(with_sizes(pb.CreateWarmPoolRequest(project_id=ID, environment_class_id=ID), **sizes))
    assert exc.value.field == field


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [({"max_size": 20}, (1, 20)), ({"min_size": 20, "max_size": 20}, (20, 20)), ({"desired_size": 20}, (20, 20))],
)
def test_twenty_is_accepted_on_resize(org, sizes, expected):
    pool = create(org, min_size=1, max_size=3)
    pool = services.warm_pool_update(actor=org.admin, pool=pool, **sizes)
    stored = WarmPool.objects.get(id=pool.id)
    assert (stored.min_size, stored.max_size, stored.spec_version) == (*expected, 2)


@pytest.mark.parametrize(("sizes", "field"), [({"max_size": 21}, "max_size"), ({"desired_size": 21}, "desired_size")])
def test_twenty_one_is_refused_on_resize(sizes, field):
    with pytest.raises(InvalidArgument, match="less than or equal to 20") as exc:
        validate(with_sizes(pb.UpdateWarmPoolRequest(warm_pool_id=ID), **sizes))
    assert exc.value.field == field
