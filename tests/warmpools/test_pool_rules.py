"""Warm pool rules that need no snapshot and start no process: a pool goes when its class stops
getting prebuilds, the autoscaler and the reconciler's demand window (judged by the pass's `now`),
who may delete an environment, and the percentile the metrics use. (The pools of real workspaces
are in tests/processes/warmpools.)"""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import TestCase

from projects import services as project_services
from warmpools import autoscale, reconciler, services
from warmpools.models import EnvironmentPhase, WarmPool, WarmPoolPhase


def make_pool(org, **sizes):
    return services.warm_pool_create(actor=org.admin, project=org.project, environment_class_id=org.small.id, **sizes)


@pytest.mark.django_db
def test_disabling_prebuilds_deletes_the_pool(org):
    pool = make_pool(org, min_size=0, max_size=1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        project_services.project_update(actor=org.admin, project=org.project, prebuilds_enabled=False)
    pool.refresh_from_db()
    assert (pool.desired_phase, pool.phase) == (WarmPoolPhase.DELETED, WarmPoolPhase.DELETING)


@pytest.mark.django_db
def test_removing_the_class_from_the_configuration_deletes_its_pool(org):
    pool = make_pool(org, min_size=0, max_size=1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        project_services.project_update(
            actor=org.admin, project=org.project, prebuild_environment_class_ids=[org.large.id]
        )
    assert WarmPool.objects.get(id=pool.id).desired_phase == WarmPoolPhase.DELETED


def test_the_autoscaler_follows_demand_steadily():
    pool = WarmPool(min_size=1, max_size=5, status_desired_size=1)
    now = CLAIMS_AT
    assert autoscale.next_target(pool, now, 0) == 1  # never below min
    assert autoscale.next_target(pool, now, 4) == 4  # up at once
    assert autoscale.next_target(pool, now, 40) == 5  # never above max
    pool.status_desired_size, pool.target_changed_at = 4, now
    assert autoscale.next_target(pool, now + timedelta(minutes=1), 0) == 4  # not flapping down
    later = now + autoscale.SCALE_DOWN_COOLDOWN
    assert autoscale.next_target(pool, later, 0) == 3  # one step after the cooldown
    zero = WarmPool(min_size=0, max_size=3, status_desired_size=1, target_changed_at=None)
    assert autoscale.next_target(zero, now, 0) == 0  # scales to zero when min is 0
    resized = WarmPool(min_size=0, max_size=2, status_desired_size=5)
    assert autoscale.next_target(resized, now, 5) == 2  # a resize applies its bounds at once


CLAIMS_AT = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # the frozen wall clock of the claims below


@pytest.mark.django_db
def test_the_reconciler_scales_by_the_demand_of_the_last_15_minutes_and_down_one_per_10(org, time_machine):
    """The pass's `now` alone decides: which claims are recent demand, and when the target may fall
    again (target_changed_at is written with that same `now`). No snapshot is needed: a pool
    without one still gets its target, so this runs no sandbox."""
    pool = make_pool(org, min_size=0, max_size=5)
    time_machine.move_to(CLAIMS_AT, tick=False)
    for _ in range(3):
        services.environment_create(actor=org.member, project=org.project)  # misses: no instance
    time_machine.move_to(CLAIMS_AT + timedelta(days=365), tick=False)  # the wall clock says nothing

    def target_at(minutes):
        return reconciler.reconcile(pool.id, now=CLAIMS_AT + timedelta(minutes=minutes)).status_desired_size

    # The README's rule: demand over the last 15 minutes; down by one at most every 10 minutes.
    assert target_at(14) == 3  # three claims within the window: up at once
    assert target_at(16) == 3  # no demand left, but the target rose 2 minutes ago
    assert target_at(23) == 3
    assert target_at(24) == 2  # 10 minutes after the last change: one step down
    assert target_at(33) == 2
    assert target_at(34) == 1
    assert target_at(44) == 0
    pool.refresh_from_db()
    assert pool.target_changed_at == CLAIMS_AT + timedelta(minutes=44)


@pytest.mark.django_db
def test_the_periodic_pass_judges_demand_and_cooldown_by_its_own_now(org, time_machine):
    pool = make_pool(org, min_size=0, max_size=5)
    time_machine.move_to(CLAIMS_AT, tick=False)
    services.environment_create(actor=org.member, project=org.project)
    time_machine.move_to(CLAIMS_AT - timedelta(days=365), tick=False)  # the wall clock says nothing
    assert reconciler.reconcile_pass(now=CLAIMS_AT + timedelta(minutes=1)) == 1  # demand: up to 1
    assert WarmPool.objects.get(id=pool.id).status_desired_size == 1
    assert reconciler.reconcile_pass(now=CLAIMS_AT + timedelta(minutes=2)) == 0  # settled
    assert reconciler.reconcile_pass(now=CLAIMS_AT + timedelta(minutes=14)) == 0  # the claim still counts
    assert reconciler.reconcile_pass(now=CLAIMS_AT + timedelta(minutes=16)) == 1  # it no longer does: down to 0
    assert WarmPool.objects.get(id=pool.id).status_desired_size == 0


def test_percentiles_are_nearest_rank():
    from warmpools.metrics import percentile

    assert percentile([], 0.95) is None
    assert percentile([5.0], 0.5) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    assert percentile([3.0, 1.0, 2.0], 0.95) == 3.0


@pytest.mark.django_db
def test_only_the_creator_or_an_admin_deletes_an_environment(org):
    from core.errors import PermissionDenied

    environment = services.environment_create(actor=org.admin, project=org.project)
    with pytest.raises(PermissionDenied):
        services.environment_delete(actor=org.member, environment=environment)
    mine = services.environment_create(actor=org.member, project=org.project)
    assert services.environment_delete(actor=org.member, environment=mine).phase == EnvironmentPhase.DELETING
    assert services.environment_delete(actor=org.admin, environment=environment).phase == EnvironmentPhase.DELETING
