"""Organizations, members, runners, environment classes, projects and API tokens.

Models hold data and named queries only; the rules live in projects/services.py.
"""

import secrets
import uuid
from datetime import timedelta
from functools import cached_property

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q


class User(AbstractUser):
    """A Django user with a UUID id, so that a Subject's id on the wire is a UUID like every other.

    The caller's roles are one attribute, `organization_roles` ({organization id: role}), which
    every role check (projects.services.role_in, require_member, require_admin) and every
    visibility filter (`visible_to(user)`) reads. Each request has its own user instance, on which
    it is set once:
    - a token request (REST or Connect): by the API-token authentication
      (projects.services.api_token_authenticate), from its short-lived cache or the token's row;
    - a page or the browsable API (a session): on first use, from one query that also gives the
      pages their organization switcher (`organization_memberships`), whichever asks first.
    Users loaded any other way (a project's executor, a task's actor) read theirs on first use
    too. The membership services drop both when they change this user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)

    @cached_property
    def organization_memberships(self) -> list:
        """The user's memberships with their organizations, by organization name: one query per
        instance, shared by the switcher, the roles and the visibility filters of a request
        (instead of joining the memberships table into each read, which made every plan several
        times dearer)."""
        return list(
            Membership.objects.filter(user_id=self.pk).select_related("organization").order_by("organization__name")
        )

    @cached_property
    def organization_roles(self) -> dict:
        """{organization id: role}; see the class docstring for who sets it."""
        return {m.organization_id: m.role for m in self.organization_memberships}

    def set_organization_roles(self, roles: dict) -> None:
        """The roles as the authentication step knows them (the API-token cache), so that the
        request reads no membership row."""
        self.__dict__["organization_roles"] = roles

    def forget_organization_roles(self) -> None:
        self.__dict__.pop("organization_roles", None)
        self.__dict__.pop("organization_memberships", None)


class Principal(models.IntegerChoices):
    """gitpod.v1 Principal, stored with its wire number."""

    UNSPECIFIED = 0, "Unspecified"
    ACCOUNT = 1, "Account"
    USER = 2, "User"
    RUNNER = 3, "Runner"
    ENVIRONMENT = 4, "Environment"
    SERVICE_ACCOUNT = 5, "Service account"
    RUNNER_MANAGER = 6, "Runner manager"


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Organization(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class MembershipQuerySet(models.QuerySet):
    def admins(self):
        return self.filter(role=Role.ADMIN)


class Membership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_user_per_org"),
        ]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"


class RunnerBackend(models.TextChoices):
    """How a runner runs prebuilds. podman: in the devcontainer's own container (image, Dockerfile,
    features), snapshots as OCI images. bubblewrap: lifecycle commands in a sandbox on the runner
    host's own userland, snapshots as archives (image, build and features are not honoured)."""

    PODMAN = "podman", "Container (podman + Dev Containers CLI)"
    BUBBLEWRAP = "bubblewrap", "Sandbox on the host (bubblewrap)"


class Runner(models.Model):
    """Where environments of a class execute; its workers listen on `queue`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="runners")
    name = models.CharField(max_length=100)
    queue = models.CharField(max_length=100, unique=True, help_text="Celery queue its workers consume")
    backend = models.CharField(max_length=20, choices=RunnerBackend.choices, default=RunnerBackend.BUBBLEWRAP)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="runner_unique_name_per_org"),
        ]

    def __str__(self):
        return self.name


class EnvironmentClassQuerySet(models.QuerySet):
    def in_organization(self, organization):
        return self.filter(runner__organization=organization)

    def enabled(self):
        return self.filter(enabled=True)


class EnvironmentClass(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    runner = models.ForeignKey(Runner, on_delete=models.PROTECT, related_name="environment_classes")
    display_name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    cpu_cores = models.PositiveIntegerField(default=2)
    memory_mb = models.PositiveIntegerField(default=4096)
    disk_gb = models.PositiveIntegerField(default=20)
    max_processes = models.PositiveIntegerField(default=512)
    allow_network = models.BooleanField(
        default=False, help_text="Let lifecycle commands reach the network (off: sandboxed offline)"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EnvironmentClassQuerySet.as_manager()

    class Meta:
        ordering = ["display_name"]
        verbose_name_plural = "environment classes"

    def __str__(self):
        return self.display_name

    @property
    def organization_id(self):
        return self.runner.organization_id


def new_webhook_secret_nonce() -> str:
    return secrets.token_hex(16)


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user):
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization_id__in=list(user.organization_roles))

    def in_organization(self, organization):
        return self.filter(organization=organization)

    def alive(self):
        return self.filter(deleted_at__isnull=True)


class Project(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    repository_url = models.CharField(max_length=1000)
    branch = models.CharField(max_length=255, default="main")
    devcontainer_path = models.CharField(max_length=500, default=".devcontainer/devcontainer.json")
    default_environment_class = models.ForeignKey(
        EnvironmentClass, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Write-only: used for HTTPS clones, never rendered, logged or returned by an API.
    access_token = models.CharField(max_length=500, blank=True, default="")
    webhook_url = models.URLField(max_length=1000, blank=True, default="")
    # Not the webhook secret: the secret is derived from this, the project id and SECRET_KEY
    # (projects.services.webhook_secret), so that a database dump alone does not reveal it.
    webhook_secret_nonce = models.CharField(max_length=64, default=new_webhook_secret_nonce, editable=False)

    # Prebuild configuration (named as in Ona's project API).
    prebuilds_enabled = models.BooleanField(default=False)
    prebuild_environment_classes = models.ManyToManyField(
        EnvironmentClass, blank=True, related_name="prebuild_projects"
    )
    prebuild_timeout = models.DurationField(default=timedelta(hours=1))
    daily_schedule_hour_utc = models.PositiveSmallIntegerField(null=True, blank=True)
    executor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    enable_jetbrains_warmup = models.BooleanField(default=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=Q(deleted_at__isnull=True),
                name="project_unique_name_per_org",
            ),
            models.CheckConstraint(
                condition=Q(daily_schedule_hour_utc__isnull=True) | Q(daily_schedule_hour_utc__lte=23),
                name="project_schedule_hour_in_day",
            ),
        ]

    def __str__(self):
        return self.name


class ApiTokenQuerySet(models.QuerySet):
    def active(self, now):
        return self.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class ApiToken(models.Model):
    """A bearer token for the APIs. Only a SHA-256 of the secret is stored; `prefix` helps a person
    tell tokens apart on the tokens page without revealing them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class SecretScope(models.TextChoices):
    """Where a secret is injected."""

    PREBUILDS = "prebuilds", "Prebuilds"
    ENVIRONMENTS = "environments", "Environments"
    BOTH = "both", "Prebuilds and environments"


class SecretQuerySet(models.QuerySet):
    def of_organization(self, organization_id):
        """The organization's own secrets (not its projects')."""
        return self.filter(organization_id=organization_id, project__isnull=True)

    def of_project(self, project_id):
        return self.filter(project_id=project_id)

    def for_scope(self, scope: str):
        return self.filter(scope__in=(scope, SecretScope.BOTH))


class Secret(models.Model):
    """An organization secret (project empty) or a project secret. The value is write-only: only
    its Fernet token is stored (projects.secrets), and no interface shows it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="secrets")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="secrets")
    name = models.CharField(max_length=128)
    encrypted_value = models.TextField(editable=False)
    scope = models.CharField(max_length=16, choices=SecretScope.choices, default=SecretScope.BOTH)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SecretQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=Q(project__isnull=True),
                name="secret_unique_name_per_org",
            ),
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=Q(project__isnull=False),
                name="secret_unique_name_per_project",
            ),
        ]

    def __str__(self):
        return self.name


class SecretAction(models.TextChoices):
    CREATED = "created", "Created"
    REPLACED = "replaced", "Replaced"
    DELETED = "deleted", "Deleted"


class SecretChange(models.Model):
    """One change of a secret: who, when, which name, what. Never the value."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="secret_changes")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="secret_changes")
    name = models.CharField(max_length=128)
    action = models.CharField(max_length=16, choices=SecretAction.choices)
    scope = models.CharField(max_length=16, choices=SecretScope.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} {self.action}"
