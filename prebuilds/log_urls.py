from django.urls import path

from prebuilds import log_views

urlpatterns = [
    path("<uuid:prebuild_id>", log_views.prebuild_logs, name="prebuild-logs"),
]
