"""`make run`'s entry point, for real: migrate and demo data into a fresh data directory, start
`manage.py serve` on a free port, and talk to it over HTTP like a browser would."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from projects.runner_bridge import container_host_problem
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(url: str, process: subprocess.Popen, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds}s")


DEMO_PREBUILD = """
import json, time
from django.contrib.auth import get_user_model
from prebuilds import services
from projects.models import Project
project = Project.objects.get(name="demo")
prebuild = services.prebuild_create(actor=get_user_model().objects.get(username="admin"), project=project)
for _ in range(200):
    prebuild.refresh_from_db()
    if prebuild.is_terminal:
        break
    time.sleep(1)
print(json.dumps({
    "phase": prebuild.get_phase_display(),
    "failure": prebuild.failure_message,
    "backend": prebuild.environment_class.runner.backend,
    "image": prebuild.snapshot_image,
    "steps": list(prebuild.steps.order_by("position").values_list("name", flat=True)),
}))
"""


def test_make_run_entry_point_serves_health_and_admin(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "PYTEST_VERSION", "PYTEST_CURRENT_TEST"}}
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        DEMO_ADMIN_PASSWORD="demo-admin-pw",
        PORT=str(free_port()),
        CONTAINER_EMBEDDED_REGISTRY_PORT=str(free_port()),
    )
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True, cwd=REPO_ROOT)
    # As make run does: on a host with podman it finds (or builds) the base image the demo names.
    subprocess.run([*manage, "container_setup"], env=env, check=True, cwd=REPO_ROOT, capture_output=True)
    demo = subprocess.run([*manage, "demo_data"], env=env, check=True, cwd=REPO_ROOT, capture_output=True, text=True)
    assert "user admin   password demo-admin-pw" in demo.stdout
    again = subprocess.run([*manage, "demo_data"], env=env, check=True, cwd=REPO_ROOT, capture_output=True, text=True)
    assert "already exists" in again.stdout

    server = subprocess.Popen([*manage, "serve"], env=env, cwd=REPO_ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{env['PORT']}"
    try:
        status, body = wait_for(f"{base}/healthz", server)
        assert status == 200, body
        health = json.loads(body)
        assert health["checks"]["database"]["status"] == "ok"
        assert health["checks"]["broker"]["status"] == "ok"

        status, body = get(f"{base}/admin/login/")
        assert status == 200
        assert 'name="username"' in body

        status, body = get(f"{base}/")
        assert status == 200 and "Log in" in body  # the overview sends anonymous users to log in

        # The demo's prebuild really runs, on the backend the host can run (a container where
        # podman is here, as in CI), through the worker `serve` started.
        outcome = subprocess.run(
            [*manage, "shell", "-c", DEMO_PREBUILD], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240
        )
        result = json.loads(outcome.stdout.strip().splitlines()[-1])
        assert result["phase"] == "Completed", result
        if container_host_problem() is None:
            assert result["backend"] == "podman" and result["image"].startswith("127.0.0.1:"), result
            assert result["steps"][:2] == ["clone", "container"], result
    finally:
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait(timeout=30) is not None
    # One Ctrl-C stopped everything: no child of the server (gunicorn, worker, beat) is left.
    for marker in (str(tmp_path), f"127.0.0.1:{env['PORT']}"):
        leftovers = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
        assert leftovers == [], f"processes matching {marker} survived: {leftovers}"
