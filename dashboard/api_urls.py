"""The REST API under /api/v1/, its OpenAPI schema at /api/schema/ and the docs at /api/docs/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from prebuilds.api import PrebuildViewSet
from projects.api import EnvironmentClassViewSet, ProjectViewSet
from warmpools.api import EnvironmentViewSet, WarmPoolViewSet

router = DefaultRouter()
router.register("prebuilds", PrebuildViewSet, basename="prebuild")
router.register("warm-pools", WarmPoolViewSet, basename="warm-pool")
router.register("projects", ProjectViewSet, basename="project")
router.register("environment-classes", EnvironmentClassViewSet, basename="environment-class")
router.register("environments", EnvironmentViewSet, basename="environment")

# The schema and the docs are public: they describe the API, they do not open it.
_public = {"authentication_classes": [], "permission_classes": [], "throttle_classes": []}

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(**_public), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema", **_public), name="api-docs"),
    path("docs/redoc/", SpectacularRedocView.as_view(url_name="api-schema", **_public), name="api-redoc"),
]
