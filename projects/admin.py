from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from core.errors import InvalidArgument
from projects import services
from projects.models import ApiToken, EnvironmentClass, Membership, Organization, Project, Runner, User


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
    list_display = ["name", "queue", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name", "queue"]


@admin.register(EnvironmentClass)
class EnvironmentClassAdmin(admin.ModelAdmin):
    list_display = ["display_name", "runner", "cpu_cores", "memory_mb", "disk_gb", "allow_network", "enabled"]
    list_filter = ["enabled", "allow_network", "runner"]
    search_fields = ["display_name", "description"]


class ProjectAdminForm(forms.ModelForm):
    """The admin saves models directly, not through the services: the repository rule (which local
    folders may be cloned) is applied here with the services' own function."""

    webhook_url = forms.URLField(required=False, max_length=1000, assume_scheme="https")

    class Meta:
        model = Project
        exclude = ["access_token"]  # noqa: DJ006 - every field but the write-only token, as before

    def clean_repository_url(self):
        try:
            return services.validate_repository_url(self.cleaned_data["repository_url"])
        except InvalidArgument as error:
            raise forms.ValidationError(error.message) from None


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
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
    filter_horizontal = ["prebuild_environment_classes"]
    # The clone token is write-only everywhere: the admin neither shows nor edits it.
    exclude = ["access_token"]
    readonly_fields = ["created_at", "updated_at", "deleted_at", "created_by"]


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
