"""Warm pools, field for field as in gitpod.v1.WarmPool.

Models hold no rules: transitions live in warmpools/phases.py, writes in warmpools/services.py.
"""

import uuid

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
        return self.filter(organization__memberships__user=user).exclude(phase=WarmPoolPhase.DELETED)

    def not_deleted(self):
        return self.exclude(phase=WarmPoolPhase.DELETED)

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

    # spec
    spec_version = models.BigIntegerField(default=1)
    desired_size = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Deprecated: min = max")
    # The snapshot being warmed is the one a completed prebuild wrote; its id is the prebuild's id.
    snapshot = models.ForeignKey(Prebuild, on_delete=models.SET_NULL, null=True, blank=True, related_name="warm_pools")
    desired_phase = models.PositiveSmallIntegerField(choices=WarmPoolPhase.choices, default=WarmPoolPhase.UNSPECIFIED)
    min_size = models.PositiveSmallIntegerField(default=0)
    max_size = models.PositiveSmallIntegerField(default=1)

    # status
    phase = models.PositiveSmallIntegerField(choices=WarmPoolPhase.choices, default=WarmPoolPhase.PENDING)
    failure_message = models.TextField(blank=True, default="")
    status_version = models.BigIntegerField(default=1)
    running_instances = models.PositiveIntegerField(default=0)
    stopped_instances = models.PositiveIntegerField(default=0)
    status_desired_size = models.PositiveIntegerField(default=0)

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
