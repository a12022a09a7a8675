"""PostgreSQL restarts while a prebuild runs: the prebuild still ends in a terminal phase with a
message a person can act on, and the web server (gunicorn, not restarted) answers /healthz again.

The database is a private PostgreSQL instance of this test (the test's own database stays up), so
the fault touches only the worker, beat and the web server pointed at it."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest

from tests.conftest import REPO_ROOT
from tests.processes.faults.conftest import free_port, wait_until, worker_env

pytestmark = [pytest.mark.faults, pytest.mark.slow]

RUNNING, COMPLETED, FAILED = 30, 60, 70  # prebuilds.models.PrebuildPhase
TIMEOUT_SECONDS = 40


def healthz(base_url: str) -> int:
    try:
        with urllib.request.urlopen(base_url + "/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def test_a_postgres_restart_during_a_prebuild_ends_it_cleanly_and_the_web_server_recovers(
    processes, private_postgres, sample_repo, host_dir
):
    queue = f"fault-pg-{uuid.uuid4().hex[:8]}"
    env = worker_env(DATABASE_URL=private_postgres.url, DATA_DIR=host_dir("pg"), FAULT_QUEUE=queue)
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True, cwd=REPO_ROOT)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    gunicorn = [sys.executable, "-m", "gunicorn", "dashboard.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    processes.start("web", [*gunicorn, "--worker-class", "gthread", "--workers", "2", "--threads", "4"], env)
    processes.start("beat", processes.beat_argv(), env)
    worker = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "--queues", f"control,{queue}"]
    worker += ["--concurrency", "2", "--loglevel", "INFO", "--hostname", "pg@%h", "--without-mingle"]
    processes.start("worker", [*worker, "--without-gossip", "--without-heartbeat"], env)
    processes.ready("worker")
    wait_until(lambda: healthz(base_url) == 200, 60, "the web server answers")

    seed_env = {**env, "FAULT_REPO": str(sample_repo("slow")), "FAULT_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
    seeded = subprocess.run(
        [*manage, "shell", "-c", "from tests.processes.faults.pg_seed import main; main()"],
        env=seed_env,
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    prebuild_id = json.loads(seeded.stdout.strip().splitlines()[-1])["prebuild_id"]

    def prebuild():
        try:
            with psycopg.connect(private_postgres.url, connect_timeout=2) as conn:
                return conn.execute(
                    "SELECT phase, failure_message FROM prebuilds_prebuild WHERE id = %s", (prebuild_id,)
                ).fetchone()
        except psycopg.OperationalError:
            return None  # the database is down

    phase, message = wait_until(lambda: (row := prebuild()) and row[0] >= RUNNING and row, 60, "the prebuild runs")
    assert phase == RUNNING, message
    time.sleep(3)  # well inside its lifecycle command

    private_postgres.stop()
    down_at = time.monotonic()
    assert wait_until(lambda: healthz(base_url) == 503, 20, "/healthz reports the database down")
    time.sleep(2)
    private_postgres.start()
    up_at = time.monotonic()

    wait_until(lambda: healthz(base_url) == 200, 30, "/healthz answers again without a restart")
    web_back = time.monotonic() - up_at
    phase, message = wait_until(
        lambda: (row := prebuild()) and row[0] in {COMPLETED, FAILED} and row,
        TIMEOUT_SECONDS + 60,
        "the prebuild ends",
    )
    ended = time.monotonic() - down_at
    print(f"web healthy {web_back:.1f}s after PostgreSQL came back; prebuild ended {ended:.1f}s after the outage")
    print(f"prebuild: phase {phase}, message {message!r}; restarted: {processes.restarts}")
    assert phase == COMPLETED or message.startswith(("runner lost", "timed out", "internal runner error")), message
    assert "Traceback" not in message
