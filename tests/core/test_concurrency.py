"""Two writers at once, each on its own database connection and with its own copy of the row, read
before either writes: no update is lost, versions stay consistent, and the one-pool-per-pair rule
holds. On PostgreSQL the writes really overlap; on SQLite the database lock serializes them, and the
second writer still starts from the stale copy it read, so a lost update shows there too (with one
instance shared by both threads, the first writer's changes reached the second through the object,
and the tests passed without compare-and-swap)."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import AlreadyExists
from prebuilds import services as prebuild_services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase
from warmpools import services as pool_services
from warmpools import status as pool_status
from warmpools.models import Environment, EnvironmentPhase, WarmPool

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*functions, each_reads=None):
    """Start the functions in threads behind a barrier so they really overlap; collect results.
    With `each_reads`, every thread first reads its own copy with it (on its own connection), and
    only then, once all have read, calls its function with that copy."""
    barrier = threading.Barrier(len(functions))
    results = [None] * len(functions)

    def runner(i, fn):
        try:
            own = each_reads() if each_reads else None
            barrier.wait()
            results[i] = fn(own) if each_reads else fn()
        except Exception as exc:  # handed back to the test, which asserts on it
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_resizes_lose_no_update(org):
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=0, max_size=2
    )
    rounds = 10
    for i in range(rounds):
        results = run_together(
            lambda f, i=i: pool_services.warm_pool_update(actor=org.admin, pool=f, max_size=10 + i),
            lambda f, i=i: pool_services.warm_pool_update(actor=org.admin, pool=f, min_size=1 + i % 3),
            each_reads=lambda: WarmPool.objects.get(id=pool.id),  # both writers start from the same version
        )
        assert not [r for r in results if isinstance(r, Exception)]
        final = WarmPool.objects.get(id=pool.id)
        # Each writer changed a different field: both changes must be there.
        assert (final.min_size, final.max_size) == (1 + i % 3, 10 + i)
    assert WarmPool.objects.get(id=pool.id).spec_version == 1 + 2 * rounds


def test_concurrent_cancels_of_one_prebuild_write_once(org):
    for _ in range(5):
        prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
        prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
        results = run_together(
            lambda f: prebuild_services.prebuild_cancel(actor=org.member, prebuild=f),
            lambda f: prebuild_services.prebuild_cancel(actor=org.admin, prebuild=f),
            each_reads=lambda p=prebuild: Prebuild.objects.get(id=p.id),
        )
        assert not [r for r in results if isinstance(r, Exception)]
        final = Prebuild.objects.get(id=prebuild.id)
        assert final.desired_phase == PrebuildPhase.CANCELLED
        assert final.spec_version == 2  # one write; the second cancel saw it and did nothing


def test_concurrent_cancel_and_status_write_keep_both(org):
    """A cancel (spec) racing the runner's progress (status) loses neither."""
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=org.project)
    claimed = prebuild_status.prebuild_claim(prebuild_id=prebuild.id)
    results = run_together(
        lambda own: prebuild_services.prebuild_cancel(actor=org.member, prebuild=own),
        lambda own: prebuild_status.prebuild_set_status(prebuild=own, phase=PrebuildPhase.RUNNING),
        each_reads=lambda: Prebuild.objects.get(id=claimed.id),
    )
    assert not [r for r in results if isinstance(r, Exception)]
    final = Prebuild.objects.get(id=prebuild.id)
    assert (final.desired_phase, final.phase) == (PrebuildPhase.CANCELLED, PrebuildPhase.RUNNING)
    assert (final.spec_version, final.status_version) == (2, 3)


def test_two_concurrent_creates_of_a_pair_make_one_pool(org):
    for environment_class in (org.small, org.large):
        results = run_together(
            *[
                lambda ec=environment_class: pool_services.warm_pool_create(
                    actor=org.admin, project=org.project, environment_class_id=ec.id, max_size=1
                )
                for _ in range(2)
            ]
        )
        created = [r for r in results if isinstance(r, WarmPool)]
        refused = [r for r in results if isinstance(r, AlreadyExists)]
        assert (len(created), len(refused)) == (1, 1), results
        assert WarmPool.objects.filter(environment_class=environment_class).count() == 1


def test_concurrent_environment_delete_and_ready_report_keep_both(org):
    """A delete (spec, then DELETING) racing the runner's READY (status), each from its own copy of
    the CREATING row: the delete is kept, and the environment ends DELETING whichever wrote first."""
    for _ in range(5):
        environment = pool_services.environment_create(actor=org.member, project=org.project)
        results = run_together(
            lambda own: pool_services.environment_delete(actor=org.member, environment=own),
            lambda own: pool_status.environment_ready(
                environment=own, path="/w", ready_at=timezone.now(), ready_after_ms=1.0
            ),
            each_reads=lambda e=environment: Environment.objects.get(id=e.id),
        )
        assert not [r for r in results if isinstance(r, Exception)]
        final = Environment.objects.get(id=environment.id)
        assert (final.desired_phase, final.phase) == (EnvironmentPhase.DELETED, EnvironmentPhase.DELETING)
        assert final.spec_version == 2
        # READY first, then DELETING (3); or DELETING first and the late READY loses (2).
        assert final.status_version == (3 if final.path else 2)
