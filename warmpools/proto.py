"""A warm pool in its wire form, gitpod.v1.WarmPool: the one conversion both APIs use (Connect sends
the message, REST its JSON form). Only `*_id` columns are read. And the requests of the pool
methods as the services' arguments (Connect receives them, REST and the pool forms build them)."""

from __future__ import annotations

from gitpod.v1 import prebuild_pb2 as pb

from core.pagination import Page, list_scope, paginate
from core.proto import timestamp
from warmpools.models import WarmPool
from warmpools.queries import warm_pools_for

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


# --- requests ----------------------------------------------------------------------------------

SIZES = ("min_size", "max_size", "desired_size")


def size_arguments(request: pb.CreateWarmPoolRequest | pb.UpdateWarmPoolRequest) -> dict:
    """The sizes a checked Create/UpdateWarmPoolRequest gives, None for those it leaves out: an
    optional field is given when set; CreateWarmPoolRequest.desired_size has no presence, and its
    rule ignores 0, so there 0 means "not given"."""
    sizes = {}
    for name in SIZES:
        field = request.DESCRIPTOR.fields_by_name[name]
        if field.has_presence:
            sizes[name] = getattr(request, name) if request.HasField(name) else None
        else:
            sizes[name] = getattr(request, name) or None
    return sizes


def with_sizes(request, **sizes):
    """`request` with the sizes that are not None set (the others left out)."""
    for name, value in sizes.items():
        if value is not None:
            setattr(request, name, value)
    return request


def warm_pool_page(user, request: pb.ListWarmPoolsRequest) -> Page:
    """A page of ListWarmPools, for a checked request (Connect's, or the one REST builds); its tokens
    are bound to the method and the filter."""
    f = request.filter
    queryset = warm_pools_for(
        user, project_ids=list(f.project_ids), environment_class_ids=list(f.environment_class_ids)
    )
    scope = list_scope("gitpod.v1.PrebuildService/ListWarmPools", f)
    # The wire form reads ids only: no joins.
    return paginate(
        queryset.select_related(None),
        scope=scope,
        page_size=request.pagination.page_size,
        token=request.pagination.token,
    )
