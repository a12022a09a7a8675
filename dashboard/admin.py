"""The Django admin's list of failed logins (django-axes' AccessAttempt), with an "unlock" action:
deleting an attempt is what unlocks its account or address; the action says so in its name."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages


class UnlockingAccessAttemptAdmin(AccessAttemptAdmin):
    actions = [*AccessAttemptAdmin.actions, "unlock"]

    @admin.action(description="Unlock: forget the selected failed attempts", permissions=["delete"])
    def unlock(self, request, queryset):
        names = sorted({attempt.username or attempt.ip_address for attempt in queryset})
        count, _ = queryset.delete()
        self.message_user(request, f"Unlocked {', '.join(names) or 'nothing'} ({count} records).", messages.SUCCESS)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, UnlockingAccessAttemptAdmin)
