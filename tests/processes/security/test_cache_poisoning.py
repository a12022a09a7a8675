"""Attack: write into the shared cache (Redis) and wait for the web server to read it.

Whoever can write to the Redis that the web servers share (a sandbox that reached it, a leaked
password) plants a value under an API token's cache key or its throttle key. With pickle, the next
request with that token runs the planted code inside the web server; a planted "already checked"
entry authenticates a token that does not exist. The test runs its own password-protected Redis,
configures the cache exactly as dashboard/settings.py does for a Redis broker URL, and sends the
requests through the real middleware, authentication and throttling.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import runpy
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.core.cache import caches
from django.test import Client

from projects.models import User
from projects.services import _hash_token, _token_cache_key, api_token_create

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

SETTINGS_FILE = Path(__file__).resolve().parents[3] / "dashboard" / "settings.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url():
    """A Redis of this test alone, with a password (given on stdin, not on its command line)."""
    import redis

    port, password = free_port(), uuid.uuid4().hex
    config = f"port {port}\nbind 127.0.0.1\nsave ''\nappendonly no\nrequirepass {password}\n"
    # Infrastructure, like CI's PostgreSQL, on the real clock: redis-server cannot start under
    # faketime's LD_PRELOAD (the SQLite pass runs a year ahead).
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "FAKETIME")}
    server = subprocess.Popen(
        ["redis-server", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    server.stdin.write(config.encode())
    server.stdin.close()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("the test's redis-server did not answer")
        yield url
    finally:
        client.close()
        server.terminate()
        server.wait(10)


@pytest.fixture
def shared_cache(redis_url, settings, tmp_path, monkeypatch):
    """The cache configuration that dashboard/settings.py computes for this broker URL, in effect."""
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    computed = runpy.run_path(str(SETTINGS_FILE))["CACHES"]
    settings.CACHES = computed  # the setting_changed signal drops the old cache connections
    cache = caches["default"]
    cache.clear()
    yield cache
    cache.clear()


class CreatesFile:
    """Unpickling this opens (creates) a file: the harmless stand-in for any code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def redis_key(cache, key: str) -> str:
    return cache.make_key(key)


def plant(cache, key: str, raw: bytes) -> None:
    cache._cache.get_client(write=True).set(redis_key(cache, key), raw)


def request_with(secret: str):
    client = Client(raise_request_exception=False)
    return client.get("/api/v1/prebuilds/", HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_a_planted_pickle_runs_nothing(shared_cache, make_user, tmp_path):
    user = make_user("victim")
    _, secret = api_token_create(user=user, name="ci")
    marker = tmp_path / "pwned"
    payload = pickle.dumps(CreatesFile(marker))
    plant(shared_cache, _token_cache_key(_hash_token(secret)), payload)
    plant(shared_cache, "throttle_api_token-" + hashlib.sha256(secret.encode()).hexdigest(), payload)

    response = request_with(secret)

    assert not marker.exists()
    assert response.status_code in (200, 401)
    # The entry written back is not a pickle either.
    stored = shared_cache._cache.get_client().get(redis_key(shared_cache, _token_cache_key(_hash_token(secret))))
    assert stored is not None and not stored.startswith(b"\x80")
    assert request_with(secret).status_code == 200


def test_a_planted_entry_does_not_authenticate_a_token_that_does_not_exist(shared_cache, make_user):
    admin = make_user("root-like", is_superuser=True, is_staff=True)
    forged_secret = "pbk_" + uuid.uuid4().hex
    key = _token_cache_key(_hash_token(forged_secret))
    # What each kind of cache entry would look like, had the attacker written it.
    user_copy = User.objects.defer("password").get(pk=admin.pk)
    forged_json = json.dumps(
        {"user": {"id": str(admin.pk), "username": "root-like", "is_active": True}, "roles": {}, "expires_at": None}
    )
    for raw in (pickle.dumps((user_copy, {}, None)), forged_json.encode()):
        plant(shared_cache, key, raw)
        assert request_with(forged_secret).status_code == 401
