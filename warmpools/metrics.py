"""Pool metrics, computed from what is stored: hits and misses (counters on the pool), claim
latency percentiles (from the pool's recent environments), snapshot age, idle instance-hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from warmpools.models import Environment, InstanceState, PoolInstance, WarmPool

LATENCY_SAMPLE = 200


@dataclass(frozen=True)
class PoolMetrics:
    hits: int
    misses: int
    claim_latency_p50_ms: float | None
    claim_latency_p95_ms: float | None
    snapshot_age: timedelta | None
    idle_instance_hours: float


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (no interpolation: every answer is a latency that happened)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 100) * len(ordered) // 100))  # ceil(fraction * n)
    return ordered[min(rank, len(ordered)) - 1]


def pool_metrics(pool: WarmPool, now: datetime | None = None) -> PoolMetrics:
    now = now or timezone.now()
    latencies = list(
        Environment.objects.filter(pool=pool, ready_after_ms__isnull=False)
        .order_by("-created_at")
        .values_list("ready_after_ms", flat=True)[:LATENCY_SAMPLE]
    )
    idle = pool.idle_instance_seconds
    for ready_at in PoolInstance.objects.filter(pool=pool, state=InstanceState.RUNNING).values_list(
        "ready_at", flat=True
    ):
        if ready_at:
            idle += (now - ready_at).total_seconds()
    snapshot = pool.snapshot
    return PoolMetrics(
        hits=pool.hits,
        misses=pool.misses,
        claim_latency_p50_ms=percentile(latencies, 0.50),
        claim_latency_p95_ms=percentile(latencies, 0.95),
        snapshot_age=(now - snapshot.completion_time) if snapshot and snapshot.completion_time else None,
        idle_instance_hours=idle / 3600,
    )


def claim_latency_p95_by_pool(pool_ids) -> dict:
    """Claim latency p95 of each pool in `pool_ids` (None when it has no ready environment yet),
    over the same sample as pool_metrics, in one query whatever the number of pools: list pages
    must not run a query per row."""
    pool_ids = list(pool_ids)
    if not pool_ids:
        return {}
    recent = (
        Environment.objects.filter(pool_id__in=pool_ids, ready_after_ms__isnull=False)
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("pool_id")], order_by=[F("created_at").desc(), F("id").desc()])
        )
        .filter(rank__lte=LATENCY_SAMPLE)
        .values_list("pool_id", "ready_after_ms")
    )
    latencies: dict = {pool_id: [] for pool_id in pool_ids}
    for pool_id, ready_after_ms in recent:
        latencies.setdefault(pool_id, []).append(ready_after_ms)
    return {pool_id: percentile(values, 0.95) for pool_id, values in latencies.items()}
