"""Named reads of prebuilds shared by the pages, REST and Connect (one filter, one meaning)."""

from dataclasses import dataclass, field

from django.db.models import OuterRef, Q, QuerySet, Subquery

from core.lookups import uuids
from prebuilds.models import Prebuild, PrebuildPhase


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


def previous_completed(prebuild: Prebuild) -> Prebuild | None:
    """The last completed run of the same project and class before `prebuild`: what its timeline is
    compared with, and how long it is expected to take."""
    return (
        Prebuild.objects.filter(
            project_id=prebuild.project_id,
            environment_class_id=prebuild.environment_class_id,
            phase=PrebuildPhase.COMPLETED,
            created_at__lt=prebuild.created_at,
        )
        .order_by("-created_at")
        .first()
    )


def expected_durations(prebuilds) -> dict:
    """{(project id, class id): duration of the newest completed run of that pair}, for the pairs
    of `prebuilds` (the running ones of a page): one query, however many pairs."""
    pairs = {(p.project_id, p.environment_class_id) for p in prebuilds}
    if not pairs:
        return {}
    newest = (
        Prebuild.objects.filter(
            project_id=OuterRef("project_id"),
            environment_class_id=OuterRef("environment_class_id"),
            phase=PrebuildPhase.COMPLETED,
        )
        .order_by("-created_at")
        .values("id")[:1]
    )
    condition = Q()
    for project_id, class_id in pairs:
        condition |= Q(project_id=project_id, environment_class_id=class_id)
    rows = (
        Prebuild.objects.filter(condition, phase=PrebuildPhase.COMPLETED, id=Subquery(newest))
        .exclude(started_at=None)
        .exclude(completion_time=None)
        .values_list("project_id", "environment_class_id", "started_at", "completion_time")
    )
    return {(project, cls): done - started for project, cls, started, done in rows}
