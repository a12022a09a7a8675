"""Attack: scrape /metrics from the runner host itself, without the token.

Every process on the host (and, were one ever to reach it, a lifecycle command) is "loopback", so
in production loopback alone must not open /metrics: the token is needed. Development keeps
trusting loopback. Settings are computed at start-up, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.test import Client, RequestFactory
from dashboard.metrics import allowed
factory = RequestFactory()
loopback = factory.get("/metrics", REMOTE_ADDR="127.0.0.1")
with_token = factory.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789")
status = None
if settings.PRODUCTION:
    # The whole stack: the refusal comes before any database read.
    client = Client(raise_request_exception=False)
    status = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1").status_code
print(json.dumps({
    "networks": [str(n) for n in settings.METRICS_ALLOWED_NETWORKS],
    "loopback_without_token": allowed(loopback),
    "loopback_with_token": allowed(with_token),
    "status": status,
}))
"""


def run_settings(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRICS_", "PRODUCTION", "DATABASE_URL"))}
    env.update(DJANGO_SETTINGS_MODULE="dashboard.settings", DATA_DIR=str(tmp_path))
    env["METRICS_TOKEN"] = "metrics-token-0123456789"
    env.pop("PYTEST_VERSION", None)
    env.update(extra)
    argv = [sys.executable, "-c", PROBE]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_needs_the_token_even_from_loopback(tmp_path):
    seen = run_settings(
        tmp_path,
        PRODUCTION="1",
        SECRET_KEY="production-key-" + "a1B2c3D4e5" * 5,
        SECRETS_ENCRYPTION_KEYS="A" * 43 + "=",
    )
    assert seen["networks"] == []
    assert seen["loopback_without_token"] is False
    assert seen["status"] == 403
    assert seen["loopback_with_token"] is True


def test_development_trusts_loopback(tmp_path):
    seen = run_settings(tmp_path)
    assert seen["loopback_without_token"] is True
    assert "127.0.0.1/32" in seen["networks"]
