"""Production settings, the Content-Security-Policy, structured logs and /metrics."""

import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.logging import ContextFilter, JsonFormatter, bind, unbind
from prebuilds import services
from prebuilds.models import Prebuild, PrebuildPhase
from tests.conftest import REPO_ROOT
from warmpools import services as pool_services
from warmpools.models import Environment, EnvironmentSource, WarmPool


def test_check_deploy_reports_nothing_with_the_production_variables(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PRODUCTION="1", SECRET_KEY="k" * 20 + "ABCDEFGHIJ0123456789abcdefghij", DATA_DIR=str(tmp_path))
    env.update(ALLOWED_HOSTS="prebuilds.example.com", SITE_URL="https://prebuilds.example.com")
    env.update(SECRETS_ENCRYPTION_KEYS="A" * 43 + "=")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_a_short_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(PRODUCTION="1", SECRET_KEY="x" * 40, DATA_DIR=str(tmp_path), SECRETS_ENCRYPTION_KEYS="A" * 43 + "=")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


def test_production_refuses_to_start_without_a_secrets_encryption_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SECRETS_ENCRYPTION"))}
    env.update(PRODUCTION="1", SECRET_KEY="k" * 20 + "ABCDEFGHIJ0123456789abcdefghij", DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "SECRETS_ENCRYPTION_KEYS" in result.stderr
    assert not (tmp_path / "secrets_encryption_key").exists()  # no key made up in production


def test_every_response_carries_a_strict_content_security_policy(client):
    policy = client.get("/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy


def test_templates_have_no_inline_script_handler_or_style():
    templates = list((REPO_ROOT / "templates").rglob("*.html"))
    for path in templates:
        text = re.sub(r"\{#.*?#\}", "", path.read_text())  # template comments may name what they avoid
        for tag in text.split("<script")[1:]:
            assert "src=" in tag.split(">", 1)[0], f"{path}: inline <script>"
        assert "<style" not in text, f"{path}: inline <style>"
        assert " style=" not in text, f"{path}: style attribute"
        assert not any(f" on{event}=" in text for event in ("click", "submit", "change", "load", "input")), path


def test_json_log_lines_carry_the_bound_or_explicit_id():
    record = logging.LogRecord("prebuilds.execution", logging.INFO, __file__, 1, "prebuild %s finished", ("p1",), None)
    token = bind(prebuild_id="p1")
    try:
        ContextFilter().filter(record)
    finally:
        unbind(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["prebuild_id"] == "p1" and line["message"] == "prebuild p1 finished" and line["level"] == "INFO"
    explicit = logging.LogRecord("x", logging.WARNING, __file__, 1, "pool", (), None)
    explicit.pool_id = "w1"
    assert json.loads(JsonFormatter().format(explicit))["pool_id"] == "w1"


@pytest.mark.django_db
def test_metrics_are_refused_outside_the_allowed_networks_without_the_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert ok.status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_metrics_read_the_database_at_scrape_time(client, org):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    now = timezone.now()
    Prebuild.objects.filter(id=prebuild.id).update(
        phase=PrebuildPhase.FAILED,
        started_at=now - timedelta(seconds=45),
        completion_time=now,
        failure_message="runner lost: its worker stopped reporting (no heartbeat for 60s)",
    )
    services.prebuild_create(actor=org.member, project=org.project)
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=1, max_size=3
    )
    WarmPool.objects.filter(id=pool.id).update(hits=7, misses=2, running_instances=1, stopped_instances=2)
    for ms in (3.0, 40.0, 2500.0):
        Environment.objects.create(
            organization=org.organization,
            project=org.project,
            environment_class=org.small,
            source=EnvironmentSource.POOL,
            ready_after_ms=ms,
        )

    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'prebuilds{phase="PENDING"} 1.0' in text and 'prebuilds{phase="FAILED"} 1.0' in text
    assert (
        'prebuild_duration_seconds_bucket{environment_class="small",le="60.0",outcome="failed",project="app"} 1.0'
        in text
    )
    assert "prebuild_runner_lost_total 1.0" in text
    labels = f'environment_class="small",pool="{pool.id}",project="app"'
    assert f"warm_pool_hits_total{{{labels}}} 7.0" in text and f"warm_pool_misses_total{{{labels}}} 2.0" in text
    assert f"warm_pool_running_instances{{{labels}}} 1.0" in text
    assert f"warm_pool_stopped_instances{{{labels}}} 2.0" in text
    assert 'environment_ready_seconds_bucket{le="0.05",source="pool"} 2.0' in text
    assert 'environment_ready_seconds_count{source="pool"} 3.0' in text
    assert 'warm_pools{phase="PENDING"} 1.0' in text
    assert 'celery_queue_length{queue="runner-test"}' in text
    assert "celery_broker_up 1.0" in text
