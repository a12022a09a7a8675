from django.urls import path

from prebuilds import views

app_name = "prebuilds"

urlpatterns = [
    path("", views.prebuild_list, name="list"),
    path("bulk", views.prebuild_bulk, name="bulk"),
    path("trigger-classes", views.trigger_classes, name="trigger-classes"),
    path("trigger/<uuid:project_id>", views.project_trigger, name="project-trigger"),
    path("<uuid:pk>/", views.prebuild_detail, name="detail"),
    path("<uuid:pk>/cancel", views.prebuild_cancel, name="cancel"),
    path("<uuid:pk>/delete", views.prebuild_delete, name="delete"),
    path("<uuid:pk>/logs-token", views.prebuild_logs_token, name="logs-token"),
    path("<uuid:pk>/log.txt", views.prebuild_log_download, name="log-download"),
]
