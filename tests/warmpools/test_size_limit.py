"""A warm pool holds at most 20 instances: 20 is accepted, 21 refused, on create and on resize."""

import pytest

from core.errors import InvalidArgument
from warmpools import services
from warmpools.models import WarmPool

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


@pytest.mark.parametrize("sizes", [{"max_size": 21}, {"min_size": 0, "max_size": 21}, {"desired_size": 21}])
def test_twenty_one_is_refused_on_create(org, sizes):
    with pytest.raises(InvalidArgument, match="max_size must be at most 20") as exc:
        create(org, **sizes)
    assert exc.value.field == "max_size"
    assert not WarmPool.objects.exists()


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [({"max_size": 20}, (1, 20)), ({"min_size": 20, "max_size": 20}, (20, 20)), ({"desired_size": 20}, (20, 20))],
)
def test_twenty_is_accepted_on_resize(org, sizes, expected):
    pool = create(org, min_size=1, max_size=3)
    pool = services.warm_pool_update(actor=org.admin, pool=pool, **sizes)
    stored = WarmPool.objects.get(id=pool.id)
    assert (stored.min_size, stored.max_size, stored.spec_version) == (*expected, 2)


@pytest.mark.parametrize("sizes", [{"max_size": 21}, {"desired_size": 21}])
def test_twenty_one_is_refused_on_resize(org, sizes):
    pool = create(org, min_size=1, max_size=3)
    with pytest.raises(InvalidArgument, match="max_size must be at most 20"):
        services.warm_pool_update(actor=org.admin, pool=pool, **sizes)
    stored = WarmPool.objects.get(id=pool.id)
    assert (stored.min_size, stored.max_size, stored.spec_version) == (1, 3, 1)
