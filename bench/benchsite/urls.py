"""Bare Django JSON views beside the whole site, for the API benchmark's baseline."""

from django.http import JsonResponse
from django.urls import path

from dashboard.urls import urlpatterns as site
from prebuilds.models import Prebuild
from prebuilds.proto import WIRE_COLUMNS

# The columns the API's wire form reads: the bare views do the same read, minus the framework.
FIELDS = WIRE_COLUMNS


def bare(request):
    return JsonResponse({"ok": True})


def bare_prebuild(request, pk):
    """One prebuild row as JSON: the same read as GetPrebuild, with no framework around it."""
    return JsonResponse(Prebuild.objects.filter(pk=pk).values(*FIELDS).first(), safe=False)


def bare_prebuilds(request):
    """A page of 25 rows, newest first: the same read as a 25-item ListPrebuilds."""
    rows = list(Prebuild.objects.order_by("-created_at", "-pk").values(*FIELDS)[:25])
    return JsonResponse({"prebuilds": rows})


urlpatterns = [
    path("bench/bare", bare),
    path("bench/bare/prebuilds/<uuid:pk>", bare_prebuild),
    path("bench/bare/prebuilds", bare_prebuilds),
    *site,
]
