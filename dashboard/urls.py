from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from dashboard import health, views

urlpatterns = [
    path("", views.overview, name="overview"),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", health.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("organization", views.switch_organization, name="switch-organization"),
    path("settings/tokens/", views.api_tokens, name="api-tokens"),
    path("settings/tokens/<uuid:pk>/revoke", views.api_token_revoke, name="api-token-revoke"),
    path("admin/", admin.site.urls),
    # Pages
    path("prebuilds/", include("prebuilds.urls")),
    path("warm-pools/", include("warmpools.urls")),
    path("projects/", include("projects.urls")),
    # Machine interfaces
    path("logs/", include("prebuilds.log_urls")),
    path("api/", include("dashboard.api_urls")),
    path("", include("dashboard.connect_urls")),
]
