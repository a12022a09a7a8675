"""Named reads of warm pools and environments shared by the pages, REST, Connect and the reconciler."""

from django.db.models import QuerySet

from core.lookups import uuids
from prebuilds.models import Prebuild, PrebuildPhase
from projects.models import Role
from warmpools.models import Environment, WarmPool


def warm_pools_for(user, *, project_ids=(), environment_class_ids=()) -> QuerySet:
    queryset = WarmPool.objects.visible_to(user).for_list()
    if project_ids:
        queryset = queryset.filter(project_id__in=uuids(project_ids, "project_ids"))
    if environment_class_ids:
        queryset = queryset.filter(environment_class_id__in=uuids(environment_class_ids, "environment_class_ids"))
    return queryset


def environments_for(user, *, project_ids=()) -> QuerySet:
    queryset = Environment.objects.visible_to(user)
    if project_ids:
        queryset = queryset.filter(project_id__in=uuids(project_ids, "project_ids"))
    return queryset


def pool_environments(user, pool, *, limit: int) -> list:
    """The most recent environments handed out through `pool` (not the deleted ones)."""
    return list(
        Environment.objects.visible_to(user).for_list().filter(pool=pool).order_by("-created_at", "-id")[:limit]
    )


def newest_snapshot(project_id, environment_class_id) -> Prebuild | None:
    """The newest COMPLETED prebuild of the pair: its snapshot is what a pool warms, and what an
    environment that misses the pool restores."""
    return (
        Prebuild.objects.filter(
            project_id=project_id, environment_class_id=environment_class_id, phase=PrebuildPhase.COMPLETED
        )
        .order_by("-completion_time", "-created_at")
        .first()
    )


def can_enter(user, environment: Environment) -> bool:
    """Who may open a shell in an environment (the terminal, exec): its creator and the admins of
    its organization. Other members see it listed, but a shell is the creator's working copy."""
    if not user.is_authenticated:
        return False
    role = user.organization_roles.get(environment.organization_id)
    if role is None:
        return False
    return role == Role.ADMIN or environment.creator_id == user.pk
