from django.contrib import admin

from warmpools.models import WarmPool
from warmpools.status import STATUS_FIELDS


@admin.register(WarmPool)
class WarmPoolAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "environment_class",
        "phase",
        "min_size",
        "max_size",
        "running_instances",
        "stopped_instances",
        "status_desired_size",
        "created_at",
    ]
    list_filter = ["phase", "environment_class", "project"]
    search_fields = ["id", "project__name", "failure_message"]
    list_select_related = ["project", "environment_class"]
    readonly_fields = [
        "organization",
        "project",
        "environment_class",
        "runner",
        "created_at",
        "updated_at",
        "spec_version",
        "desired_size",
        "snapshot",
        "desired_phase",
        "min_size",
        "max_size",
        "phase",
        "status_version",
        *sorted(STATUS_FIELDS),
    ]

    def has_add_permission(self, request):
        return False
