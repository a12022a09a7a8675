"""The product's files are its own user's alone (issue 11, item 5).

A data directory is set up as `make run` does (migrate, demo data, the generated secret key, the
filesystem broker), a prebuild of the demo project runs to completion (snapshot, logs), and a
second workspace is handed to another sandbox uid by the runner, as a neighbouring prebuild's
would be. Then, as a sandbox uid would on the host, every file is read with `cat` and every
folder listed with `ls` through setpriv: all of it must fail, and the folders on the way to a
workspace must reveal no sibling, while a sandbox uid can still reach its own workspace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from runner._fs import cleanup_tree
from runner.sandbox import find_bwrap

REPO_ROOT = Path(__file__).resolve().parents[3]
SANDBOX_UID = 61000  # the first uid of the product's sandbox range
NEIGHBOUR_UID = 61001
SIBLING = "neighbour-workspace"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="reading as another uid needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed"),
    pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed"),
]

RUN_A_PREBUILD = f"""
from pathlib import Path
from django.conf import settings
from prebuilds import execution, services
from projects import runner_bridge
from projects.models import Project, User
from runner.sandbox import SandboxLimits, run_sandboxed

project = Project.objects.get(name="demo")
prebuild = services.prebuild_create(actor=User.objects.get(username="member"), project=project)
execution.execute(str(prebuild.id))
prebuild.refresh_from_db()
print("PHASE", prebuild.get_phase_display(), prebuild.failure_message)

# A neighbour's workspace, handed over by the runner to its own sandbox uid.
runner_bridge.ensure_traversable(settings.WORKSPACES_DIR)
neighbour = settings.WORKSPACES_DIR / "{SIBLING}"
neighbour.mkdir()
result = run_sandboxed(
    ["sh", "-c", "echo private > notes.txt"], workspace=neighbour, limits=SandboxLimits(), uid={NEIGHBOUR_UID}
)
print("NEIGHBOUR", result.exit_status)
"""


def manage(data_dir: Path, *args: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "PYTEST", "DJANGO_"))
    }
    # The bubblewrap backend's files (snapshot archives, workspaces a sandbox uid reaches): on a
    # host with podman the demo runner would otherwise be a container one.
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="dashboard.settings", DEMO_RUNNER_BACKEND="bubblewrap")
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def as_uid(uid: int, *argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", *argv], capture_output=True, timeout=30
    )
    # Files such as the database are binary: what was read is shown, not decoded strictly.
    done.stdout = done.stdout.decode(errors="replace")
    return done


@pytest.fixture(scope="module")
def data_dir():
    path = Path(tempfile.mkdtemp(prefix="file-modes-", dir="/tmp"))
    manage(path, "migrate", "--no-input", "-v", "0")
    manage(path, "demo_data")
    out = manage(path, "shell", "-v", "0", "-c", RUN_A_PREBUILD)
    assert "PHASE Completed" in out, out
    assert "NEIGHBOUR 0" in out, out
    yield path
    cleanup_tree(path)


def product_files(data_dir: Path) -> list[Path]:
    """Every file of the product under the data dir (the neighbour's workspace is not the product's)."""
    sibling = data_dir / "workspaces" / SIBLING
    found = []
    for root, dirs, files in os.walk(data_dir):
        if Path(root) == sibling:
            dirs[:] = []
            continue
        found += [Path(root, name) for name in files]
    return found


def test_the_setup_made_every_kind_of_product_file(data_dir):
    names = {str(p.relative_to(data_dir)) for p in product_files(data_dir)}
    assert {"db.sqlite3", "secret_key"} <= names
    assert any(n.startswith("snapshots/") for n in names)
    assert any(n.startswith("broker/queue/") for n in names)  # the prebuild's queued message
    assert any(n.startswith("demo-repo/.git/") for n in names)


def test_the_sandbox_uid_can_read_no_product_file(data_dir):
    readable = [str(p) for p in product_files(data_dir) if as_uid(SANDBOX_UID, "cat", str(p)).returncode == 0]
    assert readable == []


def test_the_sandbox_uid_can_list_no_folder(data_dir):
    folders = [Path(root) for root, _, _ in os.walk(data_dir) if Path(root).name != SIBLING]
    assert data_dir / "workspaces" in folders and data_dir / "snapshots" in folders
    listed = [str(f) for f in folders if as_uid(SANDBOX_UID, "ls", "-a", str(f)).returncode == 0]
    assert listed == []


def test_the_folders_to_a_workspace_reveal_no_sibling(data_dir):
    for folder in (data_dir, data_dir / "workspaces"):
        for uid in (SANDBOX_UID, NEIGHBOUR_UID):
            seen = as_uid(uid, "ls", "-a", str(folder))
            assert seen.returncode != 0 and SIBLING not in seen.stdout
    # Another sandbox uid cannot enter the neighbour's workspace, even knowing its name.
    entered = as_uid(SANDBOX_UID, "cat", str(data_dir / "workspaces" / SIBLING / "notes.txt"))
    assert entered.returncode != 0 and "private" not in entered.stdout
    # ... while its own uid still reaches it through the same folders (traverse, not list).
    own = as_uid(NEIGHBOUR_UID, "cat", str(data_dir / "workspaces" / SIBLING / "notes.txt"))
    assert own.returncode == 0 and own.stdout.strip() == "private"


def test_a_data_dir_left_readable_by_an_older_version_is_made_private_at_start_up():
    path = Path(tempfile.mkdtemp(prefix="file-modes-old-", dir="/tmp"))
    try:
        path.chmod(0o755)
        (path / "broker" / "queue").mkdir(parents=True, mode=0o755)
        (path / "broker" / "queue").chmod(0o755)
        leftovers = [path / "db.sqlite3", path / "secret_key", path / "broker" / "queue" / "old.msg"]
        for file in leftovers:
            file.write_text("x" * 64)
            file.chmod(0o644)
        assert as_uid(SANDBOX_UID, "cat", str(leftovers[0])).returncode == 0  # readable before
        manage(path, "check")
        for file in leftovers:
            assert as_uid(SANDBOX_UID, "cat", str(file)).returncode != 0, file
        assert as_uid(SANDBOX_UID, "ls", str(path)).returncode != 0
    finally:
        cleanup_tree(path)
