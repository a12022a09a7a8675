"""Attack: a repository's lifecycle command looks for the worker's secrets.

A hostile onCreateCommand prints its own environment, every /proc/*/environ and /proc/*/cmdline
it can open (the sandbox's init, pid 1 inside, is bwrap's own fork) and the targets of its own
and every other visible file descriptor. The worker runs with a DATABASE_URL, a broker URL and a
secret key of unique values; none of their names or values may show up anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from runner import sandbox
from runner.executor import NullReporter, PrebuildJob, PrebuildResult, run_prebuild
from runner.sandbox import SandboxLimits, find_bwrap, run_sandboxed
from runner.store import LocalSnapshotStore

pytestmark = pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed")

# Written so that it names no variable it looks for: its own command line is on display too.
PROBE = r"""
import glob, json, os
seen = {"env": dict(os.environ), "files": {}, "unreadable": [], "fds": {}}
for path in sorted(glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline")
                   + glob.glob("/proc/[0-9]*/task/[0-9]*/environ")):
    try:
        with open(path, "rb") as f:
            seen["files"][path] = f.read().decode("utf-8", "replace")
    except OSError as exc:
        seen["unreadable"].append(f"{path}: {exc.strerror}")
for fd_dir in glob.glob("/proc/[0-9]*/fd"):
    try:
        names = os.listdir(fd_dir)
    except OSError:
        continue
    for name in names:
        try:
            seen["fds"][f"{fd_dir}/{name}"] = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            pass
print("PROBE " + json.dumps(seen))
"""


@pytest.fixture
def worker_secrets(monkeypatch):
    """The worker's environment as production has it, with values found nowhere else."""
    values = {
        "DATABASE_URL": f"postgresql://prebuilds:pg-{uuid.uuid4().hex}@127.0.0.1:5432/prebuilds",
        "CELERY_BROKER_URL": f"redis://:redis-{uuid.uuid4().hex}@127.0.0.1:6379/0",
        "SECRET_KEY": f"key-{uuid.uuid4().hex}{uuid.uuid4().hex}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def probe_output(lines: list[str]) -> dict:
    [report] = [line.removeprefix("PROBE ") for line in lines if line.startswith("PROBE ")]
    return json.loads(report)


def assert_nothing_leaked(text: str, secrets: dict) -> None:
    for name, value in secrets.items():
        assert name not in text
        # The password (or key) alone, too: a URL may be quoted or split.
        assert value not in text and value.split("@")[0].rsplit(":", 1)[-1] not in text


@pytest.mark.parametrize("allow_network", [False, True], ids=["no-network", "network"])
def test_sandboxed_command_sees_no_worker_variable(work_dir, worker_secrets, allow_network):
    workspace = work_dir / "ws"
    workspace.mkdir()
    lines = []
    result = run_sandboxed(
        ["python3", "-c", PROBE],
        workspace=workspace,
        limits=SandboxLimits(allow_network=allow_network),
        on_line=lambda stream, text: lines.append(text),
    )
    assert result.exit_status == 0, lines
    seen = probe_output(lines)
    # The probe really read the sandbox's init (bwrap's fork) and itself: nothing hid them.
    assert "/proc/1/environ" in seen["files"] and "/proc/1/cmdline" in seen["files"]
    assert "bwrap" in seen["files"]["/proc/1/cmdline"]
    assert_nothing_leaked("\n".join(lines), worker_secrets)
    assert seen["env"]["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    # No descriptor of the runner's: the probe's own are stdin, stdout, stderr and the listing.
    own = {path.rsplit("/", 1)[1]: target for path, target in seen["fds"].items() if "/proc/1/fd/" not in path}
    leftovers = {fd: t for fd, t in own.items() if int(fd) > 2 and not t.startswith("/proc/")}
    assert leftovers == {}


def test_unsandboxed_fallback_sees_no_worker_variable(work_dir, worker_secrets, monkeypatch):
    # The weaker mode (no bwrap, allowed explicitly) still starts the command with a minimal
    # environment. It sees the host's /proc, so only its own environment is checked here.
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    workspace = work_dir / "ws"
    workspace.mkdir()
    lines = []
    result = run_sandboxed(
        ["python3", "-c", "import json, os; print('PROBE ' + json.dumps({'env': dict(os.environ)}))"],
        workspace=workspace,
        limits=SandboxLimits(),
        on_line=lambda stream, text: lines.append(text),
        allow_unsandboxed=True,
    )
    assert result.exit_status == 0, lines
    assert probe_output(lines)["env"]["TERM"] == "dumb"
    assert_nothing_leaked("\n".join(lines), worker_secrets)


def make_hostile_repo(dest: Path) -> None:
    """A repository whose onCreateCommand is the probe, as an attacker would push it."""
    (dest / ".devcontainer").mkdir(parents=True)
    (dest / "probe.py").write_text(PROBE)
    (dest / ".devcontainer" / "devcontainer.json").write_text(json.dumps({"onCreateCommand": "python3 probe.py"}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(dest)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "hostile"], check=True)


class Lines(NullReporter):
    """A Reporter that keeps the log lines and ignores the rest."""

    def __init__(self):
        self.lines: list[tuple[str, str, str]] = []

    def logs(self, batch):
        self.lines.extend(batch)


def test_prebuild_lifecycle_command_sees_no_worker_variable(work_dir, worker_secrets):
    repo = work_dir / "repo"
    make_hostile_repo(repo)
    reporter = Lines()
    outcome = run_prebuild(
        PrebuildJob(
            prebuild_id="p1",
            repository_url=str(repo),
            branch="main",
            workspace=work_dir / "workspace",
            store=LocalSnapshotStore(work_dir / "store", fsync=False),
            snapshot_id="s1",
            limits=SandboxLimits(allow_network=True),
        ),
        reporter,
    )
    assert outcome.result == PrebuildResult.COMPLETED, outcome.failure_message
    lifecycle = [text for step, _, text in reporter.lines if step == "onCreateCommand"]
    seen = probe_output(lifecycle)
    assert "/proc/1/environ" in seen["files"]
    assert_nothing_leaked("\n".join(lifecycle), worker_secrets)


SETTINGS_PROBE = r"""
import json, django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"db_password": db.get("PASSWORD"), "broker": settings.CELERY_BROKER_URL,
                  "cache": settings.CACHES["default"]["LOCATION"], "secret_key": settings.SECRET_KEY,
                  "metrics_token": settings.METRICS_TOKEN}))
"""


def test_worker_secrets_can_come_from_files_instead_of_its_environment(tmp_path):
    # So that production keeps them out of the worker's environment altogether.
    secrets = {
        "DATABASE_URL": f"postgresql://prebuilds:pg-{uuid.uuid4().hex}@127.0.0.1:5432/prebuilds",
        "CELERY_BROKER_URL": f"redis://:redis-{uuid.uuid4().hex}@127.0.0.1:6379/0",
        "SECRET_KEY": f"key-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "METRICS_TOKEN": f"metrics-{uuid.uuid4().hex}",
    }
    env = {k: v for k, v in os.environ.items() if k not in secrets and k != "PYTEST_VERSION"}
    env.update(DJANGO_SETTINGS_MODULE="dashboard.settings", DATA_DIR=str(tmp_path / "data"))
    for name, value in secrets.items():
        path = tmp_path / name.lower()
        path.write_text(value + "\n")
        env[f"{name}_FILE"] = str(path)
    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["db_password"] == secrets["DATABASE_URL"].split(":")[2].split("@")[0]
    assert seen["broker"] == secrets["CELERY_BROKER_URL"]
    assert seen["cache"] == secrets["CELERY_BROKER_URL"].removesuffix("/0") + "/1"
    assert seen["secret_key"] == secrets["SECRET_KEY"]
    assert seen["metrics_token"] == secrets["METRICS_TOKEN"]


def test_command_cannot_make_a_nested_user_namespace(work_dir):
    # A user namespace of its own would give the command every capability inside it: more kernel
    # surface, and a way around what the sandbox's uid cannot do.
    workspace = work_dir / "ws"
    workspace.mkdir()
    probe = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "CLONE_NEWUSER = 0x10000000\n"
        "if libc.unshare(CLONE_NEWUSER) == 0:\n"
        "    print('nested user namespace made')\n"
        "else:\n"
        "    print('refused', ctypes.get_errno())\n"
    )
    lines = []
    result = run_sandboxed(
        ["python3", "-c", probe],
        workspace=workspace,
        limits=SandboxLimits(),
        on_line=lambda stream, text: lines.append(text),
    )
    assert result.exit_status == 0, lines
    assert lines[0].startswith("refused"), lines
