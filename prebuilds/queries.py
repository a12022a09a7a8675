"""Named reads of prebuilds shared by the pages, REST and Connect (one filter, one meaning)."""

from dataclasses import dataclass, field

from django.db.models import QuerySet

from core.lookups import uuids
from prebuilds.models import Prebuild


@dataclass
class PrebuildFilter:
    """ListPrebuilds' filter, plus environment classes for the dashboard. Empty means any."""

    project_ids: list = field(default_factory=list)
    phases: list[int] = field(default_factory=list)
    triggered_by: list[int] = field(default_factory=list)
    creator_ids: list = field(default_factory=list)
    executor_ids: list = field(default_factory=list)
    environment_class_ids: list = field(default_factory=list)


def prebuilds_for(user, filters: PrebuildFilter | None = None) -> QuerySet:
    """The prebuilds `user` may see, filtered, ready for a list (related rows joined)."""
    filters = filters or PrebuildFilter()
    queryset = Prebuild.objects.visible_to(user).for_list()
    if filters.project_ids:
        queryset = queryset.filter(project_id__in=uuids(filters.project_ids, "project_ids"))
    if filters.phases:
        queryset = queryset.filter(phase__in=filters.phases)
    if filters.triggered_by:
        queryset = queryset.filter(triggered_by__in=filters.triggered_by)
    if filters.creator_ids:
        queryset = queryset.filter(creator_id__in=uuids(filters.creator_ids, "creator_ids"))
    if filters.executor_ids:
        queryset = queryset.filter(executor_id__in=uuids(filters.executor_ids, "executor_ids"))
    if filters.environment_class_ids:
        queryset = queryset.filter(
            environment_class_id__in=uuids(filters.environment_class_ids, "environment_class_ids")
        )
    return queryset
