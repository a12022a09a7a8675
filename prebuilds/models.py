"""Prebuilds: metadata, spec (desired state) and status (observed state), field for field as in
gitpod.v1.Prebuild. Phases and triggers are stored with their wire numbers.

Models hold no rules: transitions live in prebuilds/phases.py, spec writes in prebuilds/services.py,
status writes in prebuilds/status.py (their only writer).
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models

from projects.models import EnvironmentClass, Organization, Principal, Project


class PrebuildPhase(models.IntegerChoices):
    UNSPECIFIED = 0, "Unspecified"
    PENDING = 10, "Pending"
    STARTING = 20, "Starting"
    RUNNING = 30, "Running"
    STOPPING = 40, "Stopping"
    SNAPSHOTTING = 50, "Snapshotting"
    COMPLETED = 60, "Completed"
    FAILED = 70, "Failed"
    CANCELLING = 75, "Cancelling"
    CANCELLED = 80, "Cancelled"
    DELETING = 85, "Deleting"
    DELETED = 90, "Deleted"


class PrebuildTrigger(models.IntegerChoices):
    UNSPECIFIED = 0, "Unspecified"
    MANUAL = 1, "Manual"
    SCHEDULED = 2, "Scheduled"


TERMINAL_PHASES = frozenset(
    {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED, PrebuildPhase.CANCELLED, PrebuildPhase.DELETED}
)
NON_TERMINAL_PHASES = frozenset(PrebuildPhase) - TERMINAL_PHASES - {PrebuildPhase.UNSPECIFIED}
# Phases in which a runner owns the prebuild and must notice a change of desired phase.
ACTIVE_PHASES = frozenset(
    {
        PrebuildPhase.STARTING,
        PrebuildPhase.RUNNING,
        PrebuildPhase.STOPPING,
        PrebuildPhase.SNAPSHOTTING,
        PrebuildPhase.CANCELLING,
    }
)


class PrebuildQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Prebuilds of the user's organizations, except those already deleted."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization_id__in=list(user.organization_roles)).exclude(phase=PrebuildPhase.DELETED)

    def not_deleted(self):
        return self.exclude(phase=PrebuildPhase.DELETED)

    def non_terminal(self):
        return self.exclude(phase__in=TERMINAL_PHASES)

    def active_in(self, organization_id):
        """Prebuilds of one organization that are not finished yet. Named phases (not "not
        terminal") so the database answers from the (organization, phase) index however many
        finished prebuilds there are. The caller has checked the organization is the user's."""
        return self.filter(organization_id=organization_id, phase__in=NON_TERMINAL_PHASES)

    def for_list(self):
        return self.select_related("project", "environment_class__runner", "creator", "executor")


class Prebuild(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    # metadata
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="prebuilds")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prebuilds")
    environment_class = models.ForeignKey(EnvironmentClass, on_delete=models.PROTECT, related_name="prebuilds")
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    creator_principal = models.PositiveSmallIntegerField(choices=Principal.choices, default=Principal.USER)
    executor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    triggered_by = models.PositiveSmallIntegerField(choices=PrebuildTrigger.choices, default=PrebuildTrigger.MANUAL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # spec: written by services on behalf of a person or the scheduler
    spec_version = models.BigIntegerField(default=1)
    desired_phase = models.PositiveSmallIntegerField(choices=PrebuildPhase.choices, default=PrebuildPhase.UNSPECIFIED)
    timeout = models.DurationField(default=timedelta(hours=1))

    # status: written by the runner side only
    phase = models.PositiveSmallIntegerField(choices=PrebuildPhase.choices, default=PrebuildPhase.PENDING)
    status_version = models.BigIntegerField(default=1)
    completion_time = models.DateTimeField(null=True, blank=True)
    failure_message = models.TextField(blank=True, default="")
    warning_message = models.TextField(blank=True, default="")
    log_url = models.CharField(max_length=500, blank=True, default="")
    environment_id = models.CharField(max_length=64, blank=True, default="")
    snapshot_completion_percentage = models.PositiveSmallIntegerField(null=True, blank=True)
    snapshot_size_bytes = models.BigIntegerField(null=True, blank=True)

    # status the product needs beyond the wire message
    started_at = models.DateTimeField(null=True, blank=True)
    # When its message was last sent to the runner's queue (the reaper re-sends at most this often).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    commit_id = models.CharField(max_length=64, blank=True, default="")
    snapshot_sha256 = models.CharField(max_length=64, blank=True, default="")
    # The container backend's snapshot: an OCI image in the registry, pinned by its manifest digest
    # (snapshot_sha256 is then that digest). Empty: an archive in the snapshot store.
    snapshot_image = models.CharField(max_length=500, blank=True, default="")
    # The sequence number of the last log line stored (0: none yet), kept by logstore.append in
    # the same transaction as the lines: an open log panel asks about twice a second whether
    # anything is new, and this row alone answers.
    log_last_seq = models.PositiveIntegerField(default=0)

    objects = PrebuildQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="prebuild_org_created"),
            models.Index(fields=["project", "environment_class", "phase"], name="prebuild_pair_phase"),
            models.Index(fields=["phase", "heartbeat_at"], name="prebuild_phase_heartbeat"),
            models.Index(fields=["organization", "phase"], name="prebuild_org_phase"),
        ]

    def __str__(self):
        return f"prebuild {self.id} ({self.get_phase_display()})"

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.completion_time or self.updated_at) - self.started_at


class PrebuildStep(models.Model):
    """One step of a run (clone, each lifecycle command, snapshot) with its timings, for the timeline."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        STOPPED = "stopped", "Stopped"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prebuild = models.ForeignKey(Prebuild, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    exit_status = models.IntegerField(null=True, blank=True)
    bytes = models.BigIntegerField(null=True, blank=True, help_text="output or snapshot bytes")

    class Meta:
        ordering = ["prebuild", "position"]
        constraints = [
            models.UniqueConstraint(fields=["prebuild", "name"], name="prebuild_step_unique_name"),
        ]

    def __str__(self):
        return f"{self.name} ({self.outcome})"

    @property
    def duration(self) -> timedelta | None:
        return self.ended_at - self.started_at if self.ended_at else None


class PrebuildLogChunk(models.Model):
    """Live log lines, written in batches by the worker (one row per flush, not per line), so a
    chatty build costs hundreds of rows instead of hundreds of thousands. `lines` holds
    [step, stream, text] triples for sequence numbers first_seq..last_seq."""

    id = models.BigAutoField(primary_key=True)
    prebuild = models.ForeignKey(Prebuild, on_delete=models.CASCADE, related_name="log_chunks")
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    lines = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prebuild", "first_seq"]
        constraints = [
            models.UniqueConstraint(fields=["prebuild", "first_seq"], name="log_chunk_unique_start"),
        ]
        indexes = [models.Index(fields=["prebuild", "last_seq"], name="log_chunk_prebuild_last")]

    def __str__(self):
        return f"lines {self.first_seq}-{self.last_seq} of {self.prebuild_id}"


class PrebuildLogArchive(models.Model):
    """All of a finished prebuild's log lines, zstd-compressed JSON lines, replacing its chunks."""

    prebuild = models.OneToOneField(Prebuild, on_delete=models.CASCADE, primary_key=True, related_name="log_archive")
    line_count = models.BigIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"log archive of {self.prebuild_id} ({self.line_count} lines)"


class ScheduleState(models.Model):
    """Daily-schedule bookkeeping of one (project, environment class): after consecutive failed
    scheduled prebuilds the pair is paused, with a reason shown to people, until a manual prebuild
    of the pair succeeds."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="schedule_states")
    environment_class = models.ForeignKey(EnvironmentClass, on_delete=models.CASCADE, related_name="+")
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "environment_class"], name="schedule_state_one_per_pair"),
        ]

    def __str__(self):
        return f"schedule of {self.project} / {self.environment_class}"
