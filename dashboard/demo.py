"""Demo data for `make run`: an organization, two users, a runner, two classes and a project whose
repository is a small local git repository generated here (no network, no files from elsewhere).
Its devcontainer.json names the base image the product builds from Debian packages."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from projects import services as project_services
from projects.models import Organization, Role, RunnerBackend
from projects.runner_bridge import container_host_problem
from runner.images import BASE_IMAGE

DEMO_DEVCONTAINER = """\
// The demo project's devcontainer.json: JSON with comments (JSONC), as editors write it.
{
  "name": "demo",
  // Built from Debian packages by `manage.py container_setup` (no internet needed). With internet
  // access, name a public image instead, e.g. "mcr.microsoft.com/devcontainers/python:3.11".
  "image": "%(image)s",
  /* The prebuild lifecycle: onCreateCommand, then updateContentCommand. */
  "onCreateCommand": "python3 tools/build_deps.py",
  "updateContentCommand": ["sh", "-c", "date -u > .prebuilt-at && echo content updated"],
  // Runs when an environment starts, never during a prebuild.
  "postCreateCommand": "echo welcome",
}
"""

BUILD_DEPS = """\
import hashlib, os, time
os.makedirs("deps", exist_ok=True)
for i in range(40):
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    with open(os.path.join("deps", f"module{i:02d}.txt"), "w") as f:
        f.write(digest * 64)
    print(f"\\x1b[32mbuilt\\x1b[0m module {i + 1}/40", flush=True)
    time.sleep(0.05)
print("dependencies ready")
"""


def make_demo_repository(dest: Path) -> Path:
    """A one-commit git repository with a devcontainer.json whose lifecycle takes a few seconds."""
    dest.mkdir(parents=True)
    (dest / ".devcontainer").mkdir()
    (dest / ".devcontainer" / "devcontainer.json").write_text(DEMO_DEVCONTAINER % {"image": BASE_IMAGE})
    (dest / "tools").mkdir()
    (dest / "tools" / "build_deps.py").write_text(BUILD_DEPS)
    (dest / "README.md").write_text("# Demo project\n\nA repository for the prebuild demo.\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo",
        "GIT_AUTHOR_EMAIL": "demo@example.com",
        "GIT_COMMITTER_NAME": "Demo",
        "GIT_COMMITTER_EMAIL": "demo@example.com",
    }
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "demo"]):
        subprocess.run(argv, cwd=dest, env=env, check=True, capture_output=True)
    return dest


@dataclass
class DemoResult:
    created: bool
    passwords: dict[str, str]


def _password(variable: str) -> str:
    return os.environ.get(variable) or secrets.token_urlsafe(12)


@transaction.atomic
def create_demo_data() -> DemoResult:
    """Create the demo data once; a second call changes nothing."""
    if Organization.objects.filter(name="Demo").exists():
        return DemoResult(created=False, passwords={})
    User = get_user_model()
    passwords = {"admin": _password("DEMO_ADMIN_PASSWORD"), "member": _password("DEMO_MEMBER_PASSWORD")}
    admin = User.objects.create_superuser("admin", "admin@example.com", passwords["admin"])
    member = User.objects.create_user("member", "member@example.com", passwords["member"])
    organization = project_services.organization_create(name="Demo", admin=admin)
    project_services.membership_set(organization=organization, user=member, role=Role.MEMBER)
    # The container backend where this host can run it (podman, the CLI, subordinate ids), else
    # the bubblewrap sandbox (DEMO_RUNNER_BACKEND chooses); `serve` says which on start-up.
    backend = os.environ.get("DEMO_RUNNER_BACKEND") or (
        RunnerBackend.BUBBLEWRAP if container_host_problem() else RunnerBackend.PODMAN
    )
    runner = project_services.runner_create(
        organization=organization, name="local", queue="runner-local", backend=backend
    )
    small = project_services.environment_class_create(
        runner=runner, display_name="small", cpu_cores=2, memory_mb=2048, disk_gb=10, description="2 cores, 2 GiB"
    )
    large = project_services.environment_class_create(
        runner=runner, display_name="large", cpu_cores=4, memory_mb=8192, disk_gb=40, description="4 cores, 8 GiB"
    )
    # The one folder of the data directory that REPOSITORY_LOCAL_ROOTS admits by default (in
    # development): the project is saved through the same rule as every other.
    repository = settings.DEMO_REPOSITORY_DIR
    if not repository.exists():
        make_demo_repository(repository)
    project_services.project_create(
        actor=admin,
        organization=organization,
        name="demo",
        repository_url=str(repository),
        default_environment_class_id=small.id,
        prebuilds_enabled=True,
        prebuild_environment_class_ids=[small.id, large.id],
        prebuild_timeout=timedelta(minutes=10),
        daily_schedule_hour_utc=3,
        executor_id=admin.id,
    )
    return DemoResult(created=True, passwords=passwords)
