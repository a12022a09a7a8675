"""A live server for the API tests: gunicorn with uvicorn workers (ASGI, as in production) on a free port, with its own
DATA_DIR and SQLite database seeded by tests/processes/api/live_seed.py, and optionally a Celery worker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT, SAMPLE_REPO_SCRIPT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    base_url: str
    data_dir: Path
    env: dict
    seed: dict
    processes: list = field(default_factory=list)

    def start_worker(self, queue: str) -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", f"control,{queue}"]
            + ["--concurrency", "1", "--pool", "solo", "--loglevel", "WARNING", "--hostname", f"live-{queue}@%h"],
            env=self.env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self.processes.append(worker)
        return worker

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def start_live_server(data_dir: Path, queue: str = "runner-live") -> LiveServer:
    """Migrate and seed a fresh database under data_dir, then serve it with gunicorn. Always SQLite:
    the test run's PostgreSQL database belongs to pytest-django and is invisible to other processes."""
    port = free_port()
    repo = data_dir / "repo"
    subprocess.run([sys.executable, str(SAMPLE_REPO_SCRIPT), "ok", str(repo)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PYTEST_")}
    env.update(
        DATA_DIR=str(data_dir / "data"),
        SITE_URL=f"http://127.0.0.1:{port}",
        LIVE_REPO=str(repo),
        LIVE_QUEUE=queue,
        LOG_LEVEL="WARNING",
    )
    manage = [sys.executable, str(REPO_ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True, cwd=REPO_ROOT)
    seeded = subprocess.run(
        [*manage, "shell", "-c", "from tests.processes.api.live_seed import main; main()"],
        env=env,
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    seed = json.loads(seeded.stdout.strip().splitlines()[-1])
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "dashboard.asgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "2", "--log-level", "warning"],
        env=env,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    live = LiveServer(base_url=f"http://127.0.0.1:{port}", data_dir=data_dir, env=env, seed=seed, processes=[server])
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited with {server.returncode}")
        try:
            urllib.request.urlopen(live.base_url + "/healthz", timeout=5).close()
            break
        except urllib.error.HTTPError:
            break  # it answers
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                live.stop()
                raise AssertionError("the live server did not answer within 60 s") from None
            time.sleep(0.3)
    return live
