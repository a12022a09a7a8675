"""The REST API under /api/v1/, its OpenAPI schema at /api/schema/ and the docs at /api/docs/."""

from django.http import HttpResponse
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from prebuilds.api import PrebuildViewSet
from projects.api import EnvironmentClassViewSet, ProjectViewSet, SecretViewSet
from warmpools.api import EnvironmentViewSet, WarmPoolViewSet

# The two docs pages come from drf-spectacular's templates, which carry an inline <style> (and, for
# Redoc, an inline start-up script and blob: workers): they, and only they, carry a policy that
# allows those (the CSP middleware leaves a view's own header alone). Everything still loads from
# this site: Swagger UI and Redoc are drf-spectacular-sidecar's static files, no CDN.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; frame-ancestors 'none'"
)


class DocsPolicy:
    @extend_schema(exclude=True)  # a page about the API, not part of it
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_POLICY
        return response

    def options(self, request, *args, **kwargs):
        # DRF would describe the view with its HTML template renderer, which has no template for
        # that: answer plainly instead of failing.
        return HttpResponse(status=204, headers={"Allow": "GET, HEAD, OPTIONS"})


class SwaggerView(DocsPolicy, SpectacularSwaggerSplitView):
    pass


class RedocView(DocsPolicy, SpectacularRedocView):
    pass


router = DefaultRouter()
router.register("prebuilds", PrebuildViewSet, basename="prebuild")
router.register("warm-pools", WarmPoolViewSet, basename="warm-pool")
router.register("projects", ProjectViewSet, basename="project")
router.register("environment-classes", EnvironmentClassViewSet, basename="environment-class")
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("secrets", SecretViewSet, basename="secret")

# The schema and the docs are public: they describe the API, they do not open it.
_public = {"authentication_classes": [], "permission_classes": [], "throttle_classes": []}

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(**_public), name="api-schema"),
    path("docs/", SwaggerView.as_view(url_name="api-schema", **_public), name="api-docs"),
    path("docs/redoc/", RedocView.as_view(url_name="api-schema", **_public), name="api-redoc"),
]
