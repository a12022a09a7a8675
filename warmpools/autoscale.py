"""The autoscaler: how many running instances a pool should hold (status.desired_size).

Rule (documented in the README):
- demand = environments requested from the pool's (project, class) in the last DEMAND_WINDOW;
- wanted = demand clamped to [min_size, max_size];
- scaling up follows demand at once (a burst of claims gets capacity back quickly);
- scaling down goes one instance at a time, at most once per SCALE_DOWN_COOLDOWN, so the target
  is steady and does not flap with each claim; with min_size 0 and no demand it reaches zero;
- a resize applies its bounds at once (the target never leaves [min, max]).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from warmpools.models import Environment, WarmPool

DEMAND_WINDOW = timedelta(minutes=15)
SCALE_DOWN_COOLDOWN = timedelta(minutes=10)


def demand(pool: WarmPool, now: datetime) -> int:
    return Environment.objects.filter(
        project_id=pool.project_id,
        environment_class_id=pool.environment_class_id,
        created_at__gte=now - DEMAND_WINDOW,
    ).count()


def next_target(pool: WarmPool, now: datetime, recent_demand: int) -> int:
    low, high = pool.min_size, pool.max_size
    current = min(max(pool.status_desired_size, low), high)
    wanted = min(max(recent_demand, low), high)
    if wanted > current:
        return wanted
    if wanted < current:
        cooled = pool.target_changed_at is None or now - pool.target_changed_at >= SCALE_DOWN_COOLDOWN
        return current - 1 if cooled else current
    return current
