"""Fault tests: the production stack (PostgreSQL, Redis, real worker processes) with one part made to
fail. They need PostgreSQL (DATABASE_URL) and Redis (CELERY_BROKER_URL); without them they skip."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import REPO_ROOT, is_postgres, subprocess_env

# The worker's heartbeat is written every 5 s (prebuilds.execution.HEARTBEAT_WRITE_SECONDS): the
# timeout must span two of them, or a healthy prebuild could be declared lost between two writes.
HEARTBEAT_TIMEOUT_SECONDS = 12
REAPER_INTERVAL_SECONDS = 1
REQUEUE_AFTER_SECONDS = 5  # the smallest the setting allows


def pytest_collection_modifyitems(config, items):
    """Skip, with the reason, unless the run has PostgreSQL and Redis."""
    reasons = []
    if not is_postgres():
        reasons.append("DATABASE_URL is not PostgreSQL")
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        reasons.append("CELERY_BROKER_URL is not redis://")
    if not reasons:
        return
    skip = pytest.mark.skip(reason="fault tests need PostgreSQL and Redis: " + "; ".join(reasons))
    for item in items:
        if "tests/processes/faults/" in str(item.fspath):
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, seconds: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f}s: {what}")
        time.sleep(interval)


def json_lines(path: Path) -> list[dict]:
    """The JSON log lines of a process's output (banners and warnings are skipped)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):  # a line that merely starts with a brace
                entries.append(json.loads(line))
    return entries


def reaper_totals(log: Path) -> dict[str, int]:
    """What the reaper did, summed over its passes (each pass logs the counts it returns)."""
    totals: dict[str, int] = {}
    for entry in json_lines(log):
        data = entry.get("data") or {}
        if data.get("name") == "prebuilds.tasks.reap" and str(data.get("return_value", "")).startswith("{"):
            for key, value in ast.literal_eval(data["return_value"]).items():
                totals[key] = totals.get(key, 0) + value
    return totals


class Processes:
    """Child processes of one test, each in its own session with its output in a file; all stopped at
    the end of the test (TERM, then KILL).

    Like the supervisor of a deployment (systemd's Restart=always), it restarts a worker or beat that
    exits on its own: Celery 5.7's worker can die on a broker connection loss ("Unrecoverable error:
    AttributeError ... 'hostname'" while restoring unacked messages), and a deployment must survive
    that. A process the test kills on purpose is not restarted; `restarts` counts the others."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, tuple[list[str], dict]] = {}
        self.unsupervised: set[str] = set()
        self.restarts: dict[str, int] = {}
        self.closing = threading.Event()
        self.supervisor = threading.Thread(target=self._supervise, daemon=True)
        self.supervisor.start()

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        self.commands[name] = (argv, env)
        return self._spawn(name, "w")

    def _spawn(self, name: str, mode: str) -> subprocess.Popen:
        argv, env = self.commands[name]
        with (self.log_dir / f"{name}.log").open(mode) as log:
            process = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.children[name] = process
        return process

    def _supervise(self) -> None:
        while not self.closing.wait(1.0):
            for name, process in list(self.children.items()):
                if process.poll() is not None and name not in self.unsupervised and not self.closing.is_set():
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    self._spawn(name, "a")

    def kill(self, name: str) -> subprocess.Popen:
        """SIGKILL a process and its children, for good (the fault under test)."""
        self.unsupervised.add(name)
        process = self.children[name]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return process

    def is_ready(self, name: str) -> bool:
        return any("ready." in entry["message"] for entry in json_lines(self.log(name)))

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def worker(self, name: str, queues: str, *, concurrency: int = 2, wait: bool = True, **env) -> subprocess.Popen:
        argv = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "--queues", queues]
        argv += ["--concurrency", str(concurrency), "--prefetch-multiplier", "1", "--loglevel", "INFO"]
        argv += ["--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        process = self.start(name, argv, worker_env(**env))
        if wait:
            self.ready(name)
        return process

    def ready(self, *names: str) -> None:
        """Wait until these workers consume (they start in parallel: each takes seconds to boot)."""
        for name in names:
            process = self.children[name]
            wait_until(lambda p=process, n=name: p.poll() is not None or self.is_ready(n), 60, f"worker {name} ready")
            assert process.poll() is None, f"worker {name} exited:\n{self.log(name).read_text()[-3000:]}"

    def beat_argv(self) -> list[str]:
        schedule = self.log_dir / "celerybeat-schedule"
        argv = [sys.executable, "-m", "celery", "-A", "dashboard", "beat", "--loglevel", "INFO"]
        return [*argv, "--schedule", str(schedule)]

    def beat(self, **env) -> subprocess.Popen:
        return self.start("beat", self.beat_argv(), worker_env(**env))

    def stop(self, name: str, sig=signal.SIGTERM) -> None:
        self.unsupervised.add(name)
        process = self.children[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop_all(self) -> None:
        self.closing.set()
        self.supervisor.join()
        for name in reversed(list(self.children)):
            self.stop(name)


def worker_env(**extra) -> dict:
    """What a worker or beat of these tests runs with: this test's database and broker, JSON logs,
    and a reaper on short clocks (so that faults are repaired within the test's time)."""
    env = {
        "LOG_FORMAT": "json",
        "PREBUILD_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT_SECONDS),
        "REAPER_INTERVAL_SECONDS": str(REAPER_INTERVAL_SECONDS),
        "PREBUILD_REQUEUE_AFTER_SECONDS": str(REQUEUE_AFTER_SECONDS),
        "SECRET_KEY": settings.SECRET_KEY,
    }
    env.update({k: str(v) for k, v in extra.items()})
    # A worker of another "host" has a data dir of its own; a test may give it another database.
    own = {key: env.pop(key) for key in ("DATA_DIR", "DATABASE_URL") if key in env}
    return {**subprocess_env(**env), **own}


@pytest.fixture
def processes(transactional_db, tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    procs = Processes(log_dir)
    yield procs
    procs.stop_all()


@pytest.fixture
def host_dir():
    """A data directory for a worker on another "host". Under /tmp itself, not pytest's tmp_path: the
    sandbox user must traverse every directory above a workspace, and pytest's are private (0700)."""
    made = []

    def make(name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"faults-{name}-"))
        made.append(path)
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_runner(org):
    """A runner with its own queue (unique, so that no message left by another test reaches it) and
    a class on it that gets prebuilds on the project."""
    from projects import services as project_services

    def make(name: str):
        runner = project_services.runner_create(
            organization=org.organization, name=name, queue=f"fault-{name}-{uuid.uuid4().hex[:8]}"
        )
        environment_class = project_services.environment_class_create(runner=runner, display_name=f"class-{name}")
        classes = [*org.project.prebuild_environment_classes.all(), environment_class]
        org.project = project_services.project_update(
            actor=org.admin, project=org.project, prebuild_environment_class_ids=[c.id for c in classes]
        )
        return runner, environment_class

    return make


class PrivateRedis:
    """A Redis server of this test alone, so that the test can stop and restart it."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen([*argv, "--daemonize", "no"], stdout=subprocess.DEVNULL)
        wait_until(self.answers, 10, "redis answers")

    def answers(self) -> bool:
        probe = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return probe.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def broker(private_redis):
    """Point this process's Celery app (which services use to send tasks) at the private Redis."""
    from dashboard.celery import app

    def use(url: str) -> None:
        app.conf.broker_url = url
        # Dropping the app's references makes the next send take kombu's pool for the new URL (kombu
        # keeps one per URL: closing the old one would break the sends after the test).
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    use(private_redis.url)
    yield private_redis
    use(previous)


class PrivatePostgres:
    """A PostgreSQL instance of this test alone (initdb in a temporary directory, run as the
    `postgres` user): restarting it disturbs nothing but this test."""

    def __init__(self):
        versions = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))
        self.bin = versions[-1] / "bin"
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/faults"

    def _as_postgres(self, *argv, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=check)

    def init(self) -> None:
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres")
        self.start()
        self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "faults")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "postgres.log")
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    if os.geteuid() != 0 or not Path("/usr/lib/postgresql").is_dir():
        pytest.skip("a private PostgreSQL needs root (to run it as the postgres user) and Debian's PostgreSQL")
    pg = PrivatePostgres()
    pg.init()
    yield pg
    pg.remove()


class Tmpfs:
    """A small tmpfs (a volume that really fills up: ENOSPC, as a full disk gives)."""

    def __init__(self, path: Path, size: str):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)

    def fill(self) -> None:
        """Take every free byte (a filler file the test removes to give the space back)."""
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (1 << 20, 65536, 4096, 512, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * chunk)
                    except OSError:
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def make(name: str, size: str = "2m") -> Tmpfs:
        volume = Tmpfs(tmp_path / name, size)
        mounted.append(volume)
        return volume

    yield make
    for volume in mounted:
        volume.unmount()
