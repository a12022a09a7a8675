from django.contrib import admin

from prebuilds.models import Prebuild
from prebuilds.status import STATUS_FIELDS


@admin.register(Prebuild)
class PrebuildAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "environment_class",
        "phase",
        "triggered_by",
        "creator",
        "created_at",
        "snapshot_size_bytes",
    ]
    list_filter = ["phase", "triggered_by", "environment_class", "project"]
    search_fields = ["id", "project__name", "failure_message", "commit_id"]
    list_select_related = ["project", "environment_class", "creator"]
    date_hierarchy = "created_at"
    # Status is written by the runner only; the spec through the services (cancel/delete actions
    # live on the dashboard and the APIs), so the admin shows both read-only.
    readonly_fields = [
        "organization",
        "project",
        "environment_class",
        "creator",
        "creator_principal",
        "executor",
        "triggered_by",
        "created_at",
        "updated_at",
        "spec_version",
        "desired_phase",
        "timeout",
        "phase",
        "status_version",
        *sorted(STATUS_FIELDS),
    ]

    def has_add_permission(self, request):
        return False
