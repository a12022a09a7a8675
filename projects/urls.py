from django.urls import path

from projects import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("new/", views.project_create, name="create"),
    path("<uuid:pk>/delete", views.project_delete, name="delete"),
    path("<uuid:pk>/", views.project_detail, name="detail"),
    path("organization/secrets/", views.secrets_page, name="org-secrets"),
    path("organization/secrets/<uuid:secret_id>/delete", views.secret_delete, name="org-secret-delete"),
    path("<uuid:pk>/secrets/", views.secrets_page, name="secrets"),
    path("<uuid:pk>/secrets/<uuid:secret_id>/delete", views.secret_delete, name="secret-delete"),
    path("<uuid:pk>/webhook-secret/", views.project_webhook_secret, name="webhook-secret"),
]
