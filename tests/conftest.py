"""Shared fixtures: a small organization with an admin, a member and an outsider, a runner, classes
and a project with prebuilds enabled on two of them; the process guard of the fast lane."""

import os
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model

from dashboard.celery import app as celery_app
from projects import services as project_services
from runner._fs import cleanup_tree
from tests.builders import (  # noqa: F401 (shared fixtures)
    add_step,
    make_classes,
    make_environment,
    make_organization,
    make_pool,
    make_prebuild,
    make_runner,
    make_users,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (/work/main -> /work/shared), found from a git worktree too
# (/work/wt/<name> -> /work/shared): the nearest ancestor that holds it.
SAMPLE_REPO_SCRIPT = next(
    (
        folder / "shared" / "fixtures" / "make_sample_repo.py"
        for folder in REPO_ROOT.parents
        if (folder / "shared" / "fixtures" / "make_sample_repo.py").is_file()
    ),
    REPO_ROOT.parent / "shared" / "fixtures" / "make_sample_repo.py",
)


def is_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


@pytest.fixture
def make_user(db):
    def make(username, **extra):
        return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)

    return make


@pytest.fixture
def org(db):
    """Acme (admin alice, member bob) with a runner, the classes small, large and gpu, and the
    project app with prebuilds on small and large; Other, whose admin is mallory (the outsider).
    Made with the builders (a dozen statements); the project through project_create."""
    admin, member, outsider = make_users("alice", "bob", "mallory")
    organization = make_organization("Acme", admin=admin, members=[member])
    other = make_organization("Other", admin=outsider)
    runner = make_runner(organization, name="local", queue="runner-test")
    small, large, unconfigured = make_classes(runner, "small", "large", "gpu")
    project = project_services.project_create(
        actor=admin,
        organization=organization,
        name="app",
        repository_url="/srv/git/app",
        default_environment_class_id=small.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[small.id, large.id],
        prebuild_timeout=timedelta(minutes=30),
    )
    return SimpleNamespace(
        organization=organization,
        other=other,
        admin=admin,
        member=member,
        outsider=outsider,
        runner=runner,
        small=small,
        large=large,
        unconfigured=unconfigured,
        project=project,
    )


def pytest_configure(config):
    from django.conf import settings

    # Password hashing is deliberately slow; the tests create many users and do not test hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    _whitenoise_scans_static_files_once()


def _whitenoise_scans_static_files_once():
    """A server process builds its middleware once, and whitenoise then lists every static file
    (WHITENOISE_USE_FINDERS); Django's test client builds the middleware anew for every Client, so a
    run listed the ~200 files some 400 times (a quarter of the fast lane's time). Here the table is
    built once per set of settings that shape it and shared, as in one server process."""
    from django.conf import settings
    from whitenoise.middleware import WhiteNoiseMiddleware

    scan = WhiteNoiseMiddleware.add_files_from_finders
    tables: dict = {}

    def add_files_from_finders(self):
        key = (
            self.static_prefix,
            self.max_age,
            self.allow_all_origins,
            self.charset,
            self.add_headers_function,
            self.index_file,
            repr(getattr(settings, "WHITENOISE_IMMUTABLE_FILE_TEST", None)),
            repr(getattr(settings, "WHITENOISE_MIMETYPES", None)),
            tuple(map(str, settings.STATICFILES_DIRS)),
            tuple(settings.INSTALLED_APPS),
        )
        if key not in tables:
            before = dict(self.files)
            scan(self)
            tables[key] = {url: f for url, f in self.files.items() if before.get(url) is not f}
        # Static files found by the finders come after STATIC_ROOT's (add_files_from_finders
        # overwrites them), as in the original.
        self.files.update(tables[key])

    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders


def subprocess_env(**extra) -> dict:
    """Environment for a child process (worker, server) that must see this test's database and
    data directory: the test database, not the one DATABASE_URL names."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{Path(db['NAME']).resolve()}"
    else:
        url = (
            f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(DATABASE_URL=url, DATA_DIR=str(settings.DATA_DIR), **extra)
    return env


def wait_for_worker(process, name: str, seconds: float = 60) -> None:
    """Until the worker answers a ping through the broker: from then on it consumes its queues."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the worker {name} exited at start with {process.returncode}")
        if celery_app.control.ping(destination=[name], timeout=0.5, limit=1):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker {name} did not answer a ping within {seconds:.0f} s")


@pytest.fixture
def start_worker(transactional_db):
    """Start real Celery worker processes (each on the given queues) for this test's database."""
    import signal
    import subprocess
    import sys

    workers = []

    def start(queues: str, *, concurrency: int = 2, **env) -> subprocess.Popen:
        name = f"test{len(workers)}@{socket.gethostname()}"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "dashboard",
                "worker",
                "--queues",
                queues,
                "--concurrency",
                str(concurrency),
                "--prefetch-multiplier",
                "1",
                "--loglevel",
                "WARNING",
                "--hostname",
                name,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=REPO_ROOT,
            env=subprocess_env(**env),
            start_new_session=True,
        )
        workers.append(process)
        wait_for_worker(process, name)
        return process

    yield start
    for process in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=20)
        except Exception:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def sample_repo(tmp_path):
    """make_sample_repo.py KIND: a real local git repository made by the shared fixture script."""
    import subprocess
    import sys

    def make(kind: str, *args: str) -> Path:
        dest = tmp_path / f"repo-{kind}"
        subprocess.run(
            [sys.executable, str(SAMPLE_REPO_SCRIPT), kind, str(dest), *args], check=True, capture_output=True
        )
        return dest

    return make


@pytest.fixture
def work_dir():
    """A scratch directory the sandbox user can reach.

    pytest's tmp_path lives under /tmp/pytest-of-root, which is 0700: as root, bwrap runs as
    an unprivileged user that could not reach a workspace there.
    """
    path = Path(tempfile.mkdtemp(prefix="runner-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    cleanup_tree(path)


def pytest_addoption(parser):
    parser.addoption(
        "--no-processes",
        action="store_true",
        help="the fast lane: a test that starts a process (subprocess, fork) fails instead",
    )


@pytest.fixture(autouse=True, scope="session")
def _no_processes(request):
    """Under --no-processes, starting a child process fails whatever tried: the fast lane is honest
    about what it runs, and a test that needs a process belongs in tests/processes/. Session-wide,
    so that a module- or session-scoped fixture (a live server, say) cannot start one either."""
    if not request.config.getoption("--no-processes"):
        yield
        return

    def refuse(*args, **kwargs):
        raise AssertionError("this test starts a process; it belongs in tests/processes/ (the fast lane starts none)")

    import subprocess

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "_execute_child", refuse)
        patch.setattr(os, "fork", refuse)
        patch.setattr(os, "posix_spawn", refuse)
        patch.setattr(os, "posix_spawnp", refuse)
        yield
