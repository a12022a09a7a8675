"""A warm pool in its wire form, gitpod.v1.WarmPool: the one conversion both APIs use (Connect sends
the message, REST its JSON form). Only `*_id` columns are read."""

from __future__ import annotations

from gitpod.v1 import prebuild_pb2 as pb

from core.proto import timestamp
from warmpools.models import WarmPool

ALL_PHASE_NAMES = list(pb.WarmPoolPhase.keys())


def warm_pool_message(pool: WarmPool) -> pb.WarmPool:
    spec = pb.WarmPoolSpec(
        spec_version=pool.spec_version,
        desired_size=pool.desired_size or 0,
        desired_phase=pool.desired_phase,
        min_size=pool.min_size,
        max_size=pool.max_size,
    )
    # The snapshot being warmed is the completed prebuild that wrote it: its id is the prebuild's.
    # Left unset (empty) until one exists.
    if pool.snapshot_id:
        spec.snapshot_id = str(pool.snapshot_id)
    return pb.WarmPool(
        id=str(pool.id),
        metadata=pb.WarmPoolMetadata(
            organization_id=str(pool.organization_id),
            project_id=str(pool.project_id),
            environment_class_id=str(pool.environment_class_id),
            runner_id=str(pool.runner_id),
            created_at=timestamp(pool.created_at),
            updated_at=timestamp(pool.updated_at),
        ),
        spec=spec,
        status=pb.WarmPoolStatus(
            phase=pool.phase,
            failure_message=pool.failure_message,
            status_version=pool.status_version,
            running_instances=pool.running_instances,
            stopped_instances=pool.stopped_instances,
            desired_size=pool.status_desired_size,
        ),
    )
