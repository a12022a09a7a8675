"""/healthz: is the database reachable, is the broker reachable."""

import time

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard.celery import app as celery_app
from dashboard.metrics import metrics  # noqa: F401  (served beside /healthz: urls.py names it here)


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_broker() -> str:
    with celery_app.connection_for_write() as conn:
        # One attempt with a short timeout: a health check must answer quickly, not retry for a minute.
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


@never_cache
@require_GET
def healthz(request):
    checks = {}
    healthy = True
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        started = time.monotonic()
        try:
            state = check()
        except Exception as exc:  # a health check reports every failure instead of raising it
            state = f"error: {type(exc).__name__}"
            healthy = False
        checks[name] = {"status": state, "ms": round((time.monotonic() - started) * 1000, 1)}
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
