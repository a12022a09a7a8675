from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models

from projects.models import (
    ApiToken,
    EnvironmentClass,
    Membership,
    Organization,
    Project,
    Runner,
    Secret,
    SecretChange,
    User,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "organization__name"]


@admin.register(Runner)
class RunnerAdmin(admin.ModelAdmin):
    list_display = ["name", "queue", "backend", "organization", "created_at"]
    list_filter = ["organization", "backend"]
    search_fields = ["name", "queue"]


@admin.register(EnvironmentClass)
class EnvironmentClassAdmin(admin.ModelAdmin):
    list_display = [
        "display_name",
        "runner",
        "runner_backend",
        "cpu_cores",
        "memory_mb",
        "disk_gb",
        "allow_network",
        "enabled",
    ]
    list_filter = ["enabled", "allow_network", "runner"]
    search_fields = ["display_name", "description"]
    list_select_related = ["runner"]

    @admin.display(description="backend", ordering="runner__backend")
    def runner_backend(self, environment_class):
        return environment_class.runner.get_backend_display()


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Read-only. A project changes through projects.services only (project_create, project_update,
    project_delete: their validation, the repository rule and the signal that retires the pools of
    classes that stop getting prebuilds), which the project page and the REST API call; a model
    form saving the row directly would skip all three."""

    list_display = [
        "name",
        "organization",
        "repository_url",
        "branch",
        "prebuilds_enabled",
        "daily_schedule_hour_utc",
        "created_at",
    ]
    list_filter = ["prebuilds_enabled", "organization"]
    search_fields = ["name", "repository_url"]
    # The clone token is write-only everywhere: the admin does not show it.
    exclude = ["access_token"]
    # The read-only view still builds the model form; this keeps Django 6's default (and quiet).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    # Tokens are created with `create_api_token` or the tokens page (the secret is shown once).
    readonly_fields = ["user", "prefix", "token_hash", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    pass


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Secrets change through projects.services only (admins, with a record of each change); the
    admin site lists names and scopes and never the value, not even its ciphertext."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Secret)
class SecretAdmin(_ReadOnlyAdmin):
    list_display = ["name", "scope", "organization", "project", "updated_at"]
    list_filter = ["scope", "organization"]
    search_fields = ["name"]
    exclude = ["encrypted_value"]
    readonly_fields = ["name", "scope", "organization", "project", "created_at", "updated_at"]


@admin.register(SecretChange)
class SecretChangeAdmin(_ReadOnlyAdmin):
    list_display = ["name", "action", "scope", "organization", "project", "actor", "created_at"]
    list_filter = ["action", "organization"]
    readonly_fields = ["name", "action", "scope", "organization", "project", "actor", "created_at"]

    def has_delete_permission(self, request, obj=None):
        return False
