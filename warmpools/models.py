"""Warm pools, field for field as in gitpod.v1.WarmPool.

Models hold no rules: transitions live in warmpools/phases.py, spec writes in warmpools/services.py,
status writes (and every write of what is observed) in warmpools/status.py.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from prebuilds.models import Prebuild
from projects.models import EnvironmentClass, Organization, Project, Runner


class WarmPoolPhase(models.IntegerChoices):
    UNSPECIFIED = 0, "Unspecified"
    PENDING = 10, "Pending"
    READY = 20, "Ready"
    DEGRADED = 30, "Degraded"
    DELETING = 40, "Deleting"
    DELETED = 50, "Deleted"


class WarmPoolQuerySet(models.QuerySet):
    def visible_to(self, user):
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization_id__in=list(user.organization_roles)).exclude(phase=WarmPoolPhase.DELETED)

    def not_deleted(self):
        return self.exclude(phase=WarmPoolPhase.DELETED)

    def kept(self):
        """Pools nobody has asked to delete (what a configuration change would delete)."""
        return self.not_deleted().exclude(desired_phase=WarmPoolPhase.DELETED)

    def for_list(self):
        return self.select_related("project", "environment_class", "runner", "snapshot")


class WarmPool(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    # metadata
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="warm_pools")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="warm_pools")
    environment_class = models.ForeignKey(EnvironmentClass, on_delete=models.PROTECT, related_name="warm_pools")
    runner = models.ForeignKey(Runner, on_delete=models.PROTECT, related_name="warm_pools")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # spec: what was asked, written by warmpools/services.py
    spec_version = models.BigIntegerField(default=1)
    desired_size = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Deprecated: min = max")
    # The snapshot being warmed is the one a completed prebuild wrote; its id is the prebuild's id.
    snapshot = models.ForeignKey(Prebuild, on_delete=models.SET_NULL, null=True, blank=True, related_name="warm_pools")
    desired_phase = models.PositiveSmallIntegerField(choices=WarmPoolPhase.choices, default=WarmPoolPhase.UNSPECIFIED)
    min_size = models.PositiveSmallIntegerField(default=0)
    max_size = models.PositiveSmallIntegerField(default=1)

    # status: what is true, written only by warmpools/status.py (so are the bookkeeping and metrics below)
    phase = models.PositiveSmallIntegerField(choices=WarmPoolPhase.choices, default=WarmPoolPhase.PENDING)
    failure_message = models.TextField(blank=True, default="")
    status_version = models.BigIntegerField(default=1)
    running_instances = models.PositiveIntegerField(default=0)
    stopped_instances = models.PositiveIntegerField(default=0)
    status_desired_size = models.PositiveIntegerField(default=0)

    # Reconciler bookkeeping (not part of the wire message).
    reconcile_lease_until = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    target_changed_at = models.DateTimeField(null=True, blank=True)
    # Metrics, kept per pool.
    hits = models.PositiveIntegerField(default=0)
    misses = models.PositiveIntegerField(default=0)
    idle_instance_seconds = models.FloatField(default=0.0, help_text="ready-but-unclaimed time of retired instances")

    objects = WarmPoolQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one pool that is not deleted per (project, environment class), held by the
            # database so that two concurrent creates cannot both succeed.
            models.UniqueConstraint(
                fields=["project", "environment_class"],
                condition=~Q(phase=WarmPoolPhase.DELETED),
                name="warm_pool_one_per_pair",
            ),
            models.CheckConstraint(condition=Q(min_size__lte=models.F("max_size")), name="warm_pool_min_le_max"),
            models.CheckConstraint(condition=Q(max_size__lte=20), name="warm_pool_max_at_most_20"),
        ]

    def __str__(self):
        return f"warm pool {self.project} / {self.environment_class}"


class InstanceState(models.TextChoices):
    STOPPED = "stopped", "Stopped"  # the snapshot archive staged on the runner's disk
    RUNNING = "running", "Running"  # restored into a workspace, ready to hand out
    CLAIMED = "claimed", "Claimed"  # handed out: it is an environment now
    RETIRED = "retired", "Retired"  # removed from the runner's disk


class PoolInstance(models.Model):
    """One instance of a warm pool on its runner, built from a named snapshot."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    pool = models.ForeignKey(WarmPool, on_delete=models.CASCADE, related_name="instances")
    snapshot = models.ForeignKey(Prebuild, on_delete=models.SET_NULL, null=True, related_name="+")
    state = models.CharField(max_length=16, choices=InstanceState.choices, db_index=True)
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField(default=0, help_text="bytes it occupies on the runner's disk")
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["pool", "state"], name="pool_instance_state")]

    def __str__(self):
        return f"instance {self.id} ({self.state})"


class EnvironmentSource(models.TextChoices):
    POOL = "pool", "Warm pool"
    SNAPSHOT = "snapshot", "Snapshot"
    COLD = "cold", "Cold start"


class EnvironmentPhase(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"


class EnvironmentQuerySet(models.QuerySet):
    def visible_to(self, user):
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization_id__in=list(user.organization_roles)).exclude(phase=EnvironmentPhase.DELETED)

    def for_list(self):
        return self.select_related("project", "environment_class", "creator", "pool")


class Environment(models.Model):
    """A workspace handed to a person: from a warm pool instance (a hit), restored from the newest
    snapshot, or built cold by running the lifecycle in a fresh checkout."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="environments")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="environments")
    environment_class = models.ForeignKey(EnvironmentClass, on_delete=models.PROTECT, related_name="environments")
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    pool = models.ForeignKey(WarmPool, on_delete=models.SET_NULL, null=True, blank=True, related_name="environments")
    instance = models.OneToOneField(
        PoolInstance, on_delete=models.SET_NULL, null=True, blank=True, related_name="environment"
    )
    snapshot = models.ForeignKey(Prebuild, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    source = models.CharField(max_length=16, choices=EnvironmentSource.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # spec: what was asked (READY on create, DELETED on delete), written by warmpools/services.py
    desired_phase = models.CharField(max_length=16, choices=EnvironmentPhase.choices, default=EnvironmentPhase.READY)
    spec_version = models.BigIntegerField(default=1)

    # status: what is true, written only by warmpools/status.py
    phase = models.CharField(max_length=16, choices=EnvironmentPhase.choices, default=EnvironmentPhase.CREATING)
    status_version = models.BigIntegerField(default=1)
    path = models.CharField(max_length=500, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    ready_after_ms = models.FloatField(null=True, blank=True, help_text="from the request to a ready workspace")
    ready_at = models.DateTimeField(null=True, blank=True)
    # Where a person gets in, on the container backend: the container (by name, as the engine knows
    # it), the devcontainer's remoteUser and workspace folder, and the image it was made from. Empty
    # on the bubblewrap backend, whose workspace is a folder nobody can enter.
    container_name = models.CharField(max_length=128, blank=True, default="")
    remote_user = models.CharField(max_length=64, blank=True, default="")
    workspace_folder = models.CharField(max_length=500, blank=True, default="")
    image = models.CharField(max_length=500, blank=True, default="")
    # The output of the lifecycle that ran in the environment (postCreateCommand, postStartCommand),
    # appended by warmpools/status.py, capped; lifecycle_done_at: when the last of them finished.
    lifecycle_log = models.TextField(blank=True, default="")
    lifecycle_done_at = models.DateTimeField(null=True, blank=True)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"environment {self.id} ({self.source}, {self.phase})"
