"""Secrets in a real prebuild: a Celery worker, a real git repository, the bubblewrap sandbox. The
lifecycle command sees the values in its environment; the stored log shows only the masked form;
no host process's command line ever holds a value."""

import base64
import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from core.masking import MASK
from prebuilds import logstore, services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from projects.models import SecretScope
from projects.runner_bridge import snapshot_store
from runner.snapshot import restore_snapshot

pytestmark = pytest.mark.slow
QUEUES = "control,runner-test"

ORG_VALUE = "org-value-7Hq+/z=k"
PROJECT_VALUE = "project-Value-4Rt+/p=w"
ENV_ONLY_VALUE = "environments-only-9Xz"

ON_CREATE = (
    'echo "plain=$TOKEN"; '
    'printf %s "$TOKEN" | base64; '
    'printf %s "$TOKEN" > seen-token.txt; '
    'printf %s "$ORG_ONLY" > seen-org-only.txt; '
    # The value in two writes, apart in time: one line written in pieces.
    "printf 'piece=%.5s' \"$TOKEN\"; sleep 0.5; printf '%s end\\n' \"${TOKEN#?????}\"; "
    'echo "env_only=${ENV_ONLY:-absent}"; '
    "sleep 1"
)


def make_repo(path: Path) -> Path:
    (path / ".devcontainer").mkdir(parents=True)
    (path / ".devcontainer" / "devcontainer.json").write_text(json.dumps({"onCreateCommand": ON_CREATE}))
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "secrets"],
    ):
        subprocess.run(argv, cwd=path, check=True)
    return path


def command_lines() -> str:
    """Every host process's argv, as `ps` shows them."""
    texts = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            texts.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return "\n".join(texts)


def all_texts(prebuild) -> list[str]:
    lines, after = [], 0
    while True:
        page = logstore.read(prebuild, after=after, limit=5000)
        if not page.lines:
            return [line.text for line in lines]
        lines += page.lines
        after = page.lines[-1].seq


def test_prebuild_gets_its_secrets_in_the_environment_and_the_log_shows_them_masked(org, start_worker, tmp_path):
    admin = org.admin
    project_services.secret_set(actor=admin, organization=org.organization, name="TOKEN", value=ORG_VALUE)
    project_services.secret_set(actor=admin, organization=org.organization, name="ORG_ONLY", value=ORG_VALUE + "2")
    project_services.secret_set(
        actor=admin,
        organization=org.organization,
        name="ENV_ONLY",
        value=ENV_ONLY_VALUE,
        scope=SecretScope.ENVIRONMENTS,
    )
    project_services.secret_set(actor=admin, project=org.project, name="TOKEN", value=PROJECT_VALUE)
    project = project_services.project_update(
        actor=admin, project=org.project, repository_url=str(make_repo(tmp_path / "repo"))
    )
    start_worker(QUEUES)
    prebuild = services.prebuild_create(actor=org.member, project=project)

    seen_argv = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = command_lines()
        seen_argv += [value for value in (ORG_VALUE, PROJECT_VALUE, ENV_ONLY_VALUE) if value in lines]
        prebuild = Prebuild.objects.get(id=prebuild.id)
        if prebuild.phase in (PrebuildPhase.COMPLETED, PrebuildPhase.FAILED):
            break
        time.sleep(0.05)
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    assert seen_argv == []

    # The command saw the project's value (overriding the organization's) and the organization's own.
    restored = tmp_path / "restored"
    restore_snapshot(snapshot_store(), str(prebuild.id), restored, expected_sha256=prebuild.snapshot_sha256)
    assert (restored / "seen-token.txt").read_text() == PROJECT_VALUE
    assert (restored / "seen-org-only.txt").read_text() == ORG_VALUE + "2"

    texts = all_texts(prebuild)
    stored = "\n".join(texts)
    assert f"plain={MASK}" in texts
    assert MASK in texts  # the base64 line
    assert f"piece={MASK} end" in texts
    assert "env_only=absent" in texts  # an environments-scoped secret is not in a prebuild
    for value in (ORG_VALUE, PROJECT_VALUE, ENV_ONLY_VALUE):
        assert value not in stored
        assert base64.b64encode(value.encode()).decode() not in stored
    for message in (prebuild.failure_message, prebuild.warning_message):
        assert PROJECT_VALUE not in (message or "")
