"""Periodic upkeep, run by beat: the reaper (nothing stays non-terminal), the daily schedule, and
retention. Each pass works in bounded batches and is idempotent, so overlapping or repeated runs
do no harm.

Each pass decides by one clock, `now`, read once by its caller (the beat task) and passed down:
what the pass writes and a later pass reads back (a scheduled prebuild's created_at, a re-send's
enqueued_at) carries that same `now`, so a pass run for a given time sees exactly its own work."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from core.errors import FailedPrecondition
from prebuilds import dispatch, services, status, webhooks
from prebuilds.models import ACTIVE_PHASES, TERMINAL_PHASES, Prebuild, PrebuildPhase, PrebuildTrigger, ScheduleState
from projects.models import Project

log = logging.getLogger(__name__)

BATCH = 100


def reap(*, now: datetime | None = None) -> dict[str, int]:
    """Fail running prebuilds whose worker stopped beating; re-send pending ones whose message may
    have been lost; finish deletions that stalled. Returns counts of what it did."""
    now = now or timezone.now()
    counts = {"lost": 0, "requeued": 0, "deleting": 0}
    stale = now - settings.PREBUILD_HEARTBEAT_TIMEOUT
    lost = Prebuild.objects.filter(phase__in=ACTIVE_PHASES, heartbeat_at__lt=stale).select_related("project")
    timeout_text = _seconds(settings.PREBUILD_HEARTBEAT_TIMEOUT)
    for prebuild in lost[:BATCH]:
        try:
            prebuild = status.prebuild_set_status(
                prebuild=prebuild,
                phase=PrebuildPhase.FAILED,
                failure_message=f"runner lost: its worker stopped reporting (no heartbeat for {timeout_text})",
            )
        except FailedPrecondition:
            continue  # it moved on meanwhile: the worker is alive after all
        counts["lost"] += 1
        log.warning("prebuild %s failed: runner lost", prebuild.id, extra={"prebuild_id": str(prebuild.id)})
        status.prebuild_finished(prebuild=prebuild)

    # Sent longer ago than PREBUILD_REQUEUE_AFTER (or never): re-sent once per that period, not on
    # every pass, so a real backlog is not flooded with duplicates.
    overdue = now - settings.PREBUILD_REQUEUE_AFTER
    waiting = (
        Prebuild.objects.filter(phase=PrebuildPhase.PENDING, created_at__lt=overdue)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=overdue))
        .select_related("environment_class__runner")
    )
    for prebuild in waiting.order_by("created_at")[:BATCH]:
        if prebuild.desired_phase in (PrebuildPhase.CANCELLED, PrebuildPhase.DELETED):
            # A cancel that raced the claim: nobody will run it, so finish what was asked.
            status.prebuild_cancel_unstarted(prebuild=prebuild)
            continue
        # The claim is a conditional update, so a duplicate message is harmless.
        status.prebuild_enqueue(prebuild=prebuild, now=now)
        counts["requeued"] += 1

    stalled = Prebuild.objects.filter(phase=PrebuildPhase.DELETING, updated_at__lt=now - timedelta(minutes=5))
    for prebuild in stalled[:BATCH]:
        dispatch.delete_prebuild(prebuild)
        counts["deleting"] += 1
    return counts


def _seconds(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"


def schedule_offset_minutes(project_id, environment_class_id) -> int:
    """A stable spread of each pair's start over the first minutes of its hour."""
    digest = hashlib.sha256(f"{project_id}:{environment_class_id}".encode()).digest()
    return digest[0] % settings.SCHEDULE_SPREAD_MINUTES


def schedule_prebuilds(*, now: datetime | None = None) -> list[Prebuild]:
    """Start the day's scheduled prebuilds whose hour (and spread minute) has come: one per enabled
    class of each project, unless one of the pair already ran this hour, is running, or the pair
    is paused after repeated failures."""
    now = now or timezone.now()
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    projects = Project.objects.alive().filter(prebuilds_enabled=True, daily_schedule_hour_utc=now.hour)
    created = []
    for project in projects.prefetch_related("prebuild_environment_classes").select_related("executor", "created_by"):
        for environment_class in project.prebuild_environment_classes.all():
            if not environment_class.enabled:
                continue
            if now.minute < schedule_offset_minutes(project.id, environment_class.id):
                continue
            paused = ScheduleState.objects.filter(
                project=project, environment_class=environment_class, paused_at__isnull=False
            ).exists()
            if paused:
                continue
            already = Prebuild.objects.filter(
                project=project,
                environment_class=environment_class,
                triggered_by=PrebuildTrigger.SCHEDULED,
                created_at__gte=hour_start,
            ).exists()
            if already:
                continue
            prebuild = services.prebuild_create_scheduled(project=project, environment_class=environment_class, now=now)
            if prebuild is not None:
                created.append(prebuild)
    return created


def expire_prebuilds(*, now: datetime | None = None) -> int:
    """Delete finished prebuilds older than the retention period, except the newest completed one
    of each (project, class), which stays while it is the newest (pools and restores use it)."""
    now = now or timezone.now()
    newest_completed = (
        Prebuild.objects.filter(
            project=OuterRef("project"),
            environment_class=OuterRef("environment_class"),
            phase=PrebuildPhase.COMPLETED,
        )
        .order_by("-completion_time", "-created_at")
        .values("id")[:1]
    )
    expired = (
        Prebuild.objects.filter(phase__in=TERMINAL_PHASES - {PrebuildPhase.DELETED})
        .filter(created_at__lt=now - settings.PREBUILD_RETENTION)
        .annotate(newest=Subquery(newest_completed))
        .select_related("environment_class__runner")
    )
    count = 0
    for prebuild in expired[:BATCH]:
        if prebuild.id == prebuild.newest:
            continue
        services.prebuild_expire(prebuild=prebuild)
        count += 1
    return count


def send_failure_webhook(prebuild_id: str) -> None:
    webhooks.send_failure_webhook(prebuild_id)  # destination checks and signing: prebuilds/webhooks.py
