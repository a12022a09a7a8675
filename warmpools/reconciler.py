"""Converges each warm pool's status toward its spec.

This first version knows no instances yet (they arrive with the warm pool issue): it tells the
truth about what exists, which is nothing. A pool without a snapshot is PENDING; a pool being
deleted has nothing to drain and becomes DELETED.
"""

from warmpools import services
from warmpools.models import WarmPool, WarmPoolPhase


def reconcile(pool_id) -> WarmPool | None:
    pool = WarmPool.objects.select_related("runner").filter(id=pool_id).first()
    if pool is None or pool.phase == WarmPoolPhase.DELETED:
        return pool
    if pool.desired_phase == WarmPoolPhase.DELETED:
        if pool.phase != WarmPoolPhase.DELETING:
            pool = services.warm_pool_set_status(pool=pool, phase=WarmPoolPhase.DELETING)
        return services.warm_pool_set_status(
            pool=pool, phase=WarmPoolPhase.DELETED, running_instances=0, stopped_instances=0
        )
    return pool
