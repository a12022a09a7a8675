"""Named reads of warm pools shared by the pages, REST and Connect."""

from django.db.models import QuerySet

from core.lookups import uuids
from warmpools.models import WarmPool


def warm_pools_for(user, *, project_ids=(), environment_class_ids=()) -> QuerySet:
    queryset = WarmPool.objects.visible_to(user).for_list()
    if project_ids:
        queryset = queryset.filter(project_id__in=uuids(project_ids, "project_ids"))
    if environment_class_ids:
        queryset = queryset.filter(environment_class_id__in=uuids(environment_class_ids, "environment_class_ids"))
    return queryset


def environments_for(user, *, project_ids=()) -> QuerySet:
    from warmpools.models import Environment

    queryset = Environment.objects.visible_to(user)
    if project_ids:
        queryset = queryset.filter(project_id__in=uuids(project_ids, "project_ids"))
    return queryset


def pool_environments(user, pool, *, limit: int) -> list:
    """The most recent environments handed out through `pool` (not the deleted ones)."""
    from warmpools.models import Environment

    return list(
        Environment.objects.visible_to(user).for_list().filter(pool=pool).order_by("-created_at", "-id")[:limit]
    )
