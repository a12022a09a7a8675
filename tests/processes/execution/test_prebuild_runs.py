"""Prebuilds run for real: a Celery worker process, real git repositories, the bubblewrap sandbox,
real snapshots. Each test triggers a prebuild through the service layer, as every interface does."""

import hashlib
import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from prebuilds import logstore, maintenance, services
from prebuilds.models import Prebuild, PrebuildLogArchive, PrebuildPhase
from projects import services as project_services
from runner.snapshot import restore_snapshot

pytestmark = pytest.mark.slow
QUEUES = "control,runner-test"


def wait_for(prebuild_id, phases, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        prebuild = Prebuild.objects.get(id=prebuild_id)
        if prebuild.phase in phases:
            return prebuild
        time.sleep(0.1)
    raise AssertionError(f"prebuild stayed {prebuild.get_phase_display()}: {prebuild.failure_message}")


def trigger(org, repo: Path, **kwargs):
    project = project_services.project_update(actor=org.admin, project=org.project, repository_url=str(repo))
    return services.prebuild_create(actor=org.member, project=project, **kwargs)


def all_lines(prebuild):
    lines, after = [], 0
    while True:
        page = logstore.read(prebuild, after=after, limit=5000)
        if not page.lines:
            return lines
        lines += page.lines
        after = page.lines[-1].seq


def tree_digest(root: Path) -> dict:
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            result[rel] = ("link", os.readlink(path))
        elif path.is_file():
            result[rel] = ("file", path.stat().st_mode & 0o777, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            result[rel] = ("dir",)
    return result


def processes_matching(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_ok_completes_with_a_snapshot_that_restores_the_prebuilt_tree(org, start_worker, sample_repo, tmp_path):
    start_worker(QUEUES)
    prebuild = trigger(org, sample_repo("ok"))
    prebuild = wait_for(prebuild.id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    assert prebuild.completion_time and prebuild.snapshot_size_bytes > 0
    assert len(prebuild.commit_id) == 40
    assert prebuild.log_url.endswith(f"/logs/{prebuild.id}")
    # The image key is named, not silently ignored.
    assert "image" in prebuild.warning_message

    restored = tmp_path / "restored"
    restore_snapshot(
        __import__("prebuilds.execution", fromlist=["x"]).snapshot_store(),
        str(prebuild.id),
        restored,
        expected_sha256=prebuild.snapshot_sha256,
    )
    assert (restored / ".prebuilt-at").exists()  # updateContentCommand ran (array form)
    assert len(list((restored / "deps").rglob("*.bin"))) == 200  # onCreateCommand ran (string form)
    assert not (restored / ".post-create-ran").exists()  # postCreateCommand never runs in a prebuild
    assert (restored / ".git").is_dir()
    # The workspace was removed once snapshotted: the snapshot is the only copy.
    assert not (settings.WORKSPACES_DIR / str(prebuild.id)).exists()

    steps = list(prebuild.steps.order_by("position").values_list("name", "outcome"))
    assert steps == [
        ("clone", "succeeded"),
        ("onCreateCommand", "succeeded"),
        ("updateContentCommand", "succeeded"),
        ("snapshot", "succeeded"),
    ]
    assert prebuild.steps.get(name="snapshot").bytes == prebuild.snapshot_size_bytes
    assert PrebuildLogArchive.objects.filter(prebuild=prebuild).exists()  # archived once terminal
    texts = [line.text for line in all_lines(prebuild)]
    assert any("dependency tree ready" in t for t in texts)
    assert any("content updated" in t for t in texts)


def test_restore_matches_the_workspace_file_for_file(org, start_worker, sample_repo, tmp_path):
    """The snapshot is the workspace: rebuild the same tree by hand and compare every file."""
    repo = sample_repo("ok")
    start_worker(QUEUES)
    prebuild = wait_for(trigger(org, repo).id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    from projects.runner_bridge import snapshot_store

    restored = tmp_path / "restored"
    restore_snapshot(snapshot_store(), str(prebuild.id), restored, expected_sha256=prebuild.snapshot_sha256)
    expected = tmp_path / "expected"
    # Built with the umask the runner gives clones and lifecycle commands (022), not this process's
    # own (the product's private 077).
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "-b", "main", f"file://{repo}", str(expected)], check=True, umask=0o022
    )
    subprocess.run(
        ["python3", "tools/build_tree.py", "200", "1024", "1"],
        cwd=expected,
        check=True,
        capture_output=True,
        umask=0o022,
    )
    built = {k: v for k, v in tree_digest(expected).items() if not k.startswith(".git")}
    got = {k: v for k, v in tree_digest(restored).items() if not k.startswith(".git") and k != ".prebuilt-at"}
    assert got == built


def test_fail_names_the_command_and_its_exit_status_and_keeps_stderr(org, start_worker, sample_repo):
    start_worker(QUEUES)
    prebuild = wait_for(trigger(org, sample_repo("fail")).id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.FAILED
    assert "onCreateCommand" in prebuild.failure_message
    assert "3" in prebuild.failure_message
    stderr = [line.text for line in all_lines(prebuild) if line.stream == "stderr"]
    assert "error: dependency resolution failed" in stderr
    assert prebuild.steps.get(name="onCreateCommand").exit_status == 3
    assert prebuild.snapshot_size_bytes is None


def test_slow_is_cancelled_promptly_and_leaves_no_process(org, start_worker, sample_repo):
    start_worker(QUEUES)
    prebuild = trigger(org, sample_repo("slow"))
    wait_for(prebuild.id, {PrebuildPhase.RUNNING})
    # Wait until the command really runs (its ticks reach the log).
    deadline = time.monotonic() + 30
    while not any("tick" in line.text for line in all_lines(prebuild)) and time.monotonic() < deadline:
        time.sleep(0.2)
    asked = time.monotonic()
    services.prebuild_cancel(actor=org.member, prebuild=Prebuild.objects.get(id=prebuild.id))
    wait_for(prebuild.id, {PrebuildPhase.CANCELLING, PrebuildPhase.CANCELLED}, seconds=10)
    noticed = time.monotonic() - asked
    # The bound is 2 s; a little slack for a loaded CI machine.
    assert noticed < 3, f"cancellation noticed after {noticed:.1f}s"
    prebuild = wait_for(prebuild.id, {PrebuildPhase.CANCELLED}, seconds=10)
    assert prebuild.completion_time is not None
    assert processes_matching("seq 1 600") == []
    assert not (settings.WORKSPACES_DIR / str(prebuild.id)).exists()


def test_slow_with_a_short_timeout_fails_as_timed_out(org, start_worker, sample_repo):
    start_worker(QUEUES)
    prebuild = trigger(org, sample_repo("slow"), timeout=timedelta(seconds=4))
    prebuild = wait_for(prebuild.id, {PrebuildPhase.FAILED, PrebuildPhase.COMPLETED}, seconds=60)
    assert prebuild.phase == PrebuildPhase.FAILED
    assert prebuild.failure_message.startswith("timed out after 4s")
    assert processes_matching("seq 1 600") == []


def test_a_pending_prebuild_cancelled_never_starts(org, sample_repo):
    prebuild = trigger(org, sample_repo("slow"))
    prebuild = services.prebuild_cancel(actor=org.member, prebuild=prebuild)
    assert prebuild.phase == PrebuildPhase.CANCELLED
    from prebuilds import execution

    execution.execute(str(prebuild.id))  # a late delivery of its message
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.CANCELLED and prebuild.started_at is None


def test_bare_completes_with_a_warning(org, start_worker, sample_repo):
    start_worker(QUEUES)
    prebuild = wait_for(trigger(org, sample_repo("bare")).id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    assert "plain checkout" in prebuild.warning_message


def test_chatty_loses_no_line(org, start_worker, sample_repo):
    start_worker(QUEUES)
    prebuild = trigger(org, sample_repo("chatty"))
    prebuild = wait_for(prebuild.id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED}, seconds=300)
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    numbers = [int(line.text.split()[2]) for line in all_lines(prebuild) if line.text.startswith("log line ")]
    assert numbers == list(range(200000))


def test_escape_reads_nothing_outside_its_workspace(org, start_worker, sample_repo):
    secret = settings.DATA_DIR / "probe-secret.txt"
    secret.write_text("TOP-SECRET-VALUE-42")
    (settings.WORKSPACES_DIR / "neighbour-workspace-xyz").mkdir(parents=True, exist_ok=True)
    repo = sample_repo("escape")
    # Point the probe at a real secret inside the data dir (the sandbox would scrub an inherited
    # variable, which would make the test pass without trying).
    config = repo / ".devcontainer" / "devcontainer.json"
    config.write_text(
        config.read_text().replace('"python3 tools/escape.py"', f'"PROBE_SECRET_FILE={secret} python3 tools/escape.py"')
    )
    subprocess.run(
        ["git", "commit", "-qam", "probe the data dir"],
        cwd=repo,
        check=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
        },
    )
    start_worker(QUEUES, PROBE_SECRET_FILE=str(secret))
    prebuild = wait_for(trigger(org, repo).id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    output = "\n".join(line.text for line in all_lines(prebuild))
    # It really tried (the log names the data dir by its place, not its host path).
    assert f"denied <data dir>/{secret.name}" in output
    assert str(settings.DATA_DIR) not in output
    assert "TOP-SECRET-VALUE-42" not in output
    assert "READ /etc/shadow" not in output and "root:" not in output
    assert "neighbour-workspace-xyz" not in output


def test_a_killed_worker_leaves_the_prebuild_failed_runner_lost(org, start_worker, sample_repo, settings):
    worker = start_worker(QUEUES, concurrency=1)
    prebuild = trigger(org, sample_repo("slow"))
    wait_for(prebuild.id, {PrebuildPhase.RUNNING})
    deadline = time.monotonic() + 30
    while not any(line.text == "tick 3" for line in all_lines(prebuild)) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    # The reaper runs with the configured timeout; make "stale" now rather than wait a minute.
    Prebuild.objects.filter(id=prebuild.id).update(
        heartbeat_at=__import__("django.utils.timezone").utils.timezone.now() - timedelta(minutes=5)
    )
    assert maintenance.reap()["lost"] == 1
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.FAILED
    assert prebuild.failure_message.startswith("runner lost")
    texts = [line.text for line in all_lines(prebuild)]
    assert "tick 3" in texts  # its logs up to the kill are kept
    assert maintenance.reap()["lost"] == 0  # idempotent


def test_a_pending_prebuild_whose_message_was_lost_is_picked_up_again(org, start_worker, sample_repo, settings):
    settings.PREBUILD_REQUEUE_AFTER = timedelta(seconds=0)
    prebuild = trigger(org, sample_repo("bare"))
    # Drop the message before any worker reads it: purge the runner's queue on whatever broker
    # is configured (the filesystem queue or Redis).
    from dashboard.celery import app

    with app.connection_for_write() as connection:
        assert connection.default_channel.queue_purge("runner-test") == 1
    start_worker(QUEUES)  # returns once the worker answers a ping, i.e. consumes its (empty) queues
    assert Prebuild.objects.get(id=prebuild.id).phase == PrebuildPhase.PENDING
    assert maintenance.reap()["requeued"] == 1
    prebuild = wait_for(prebuild.id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.COMPLETED
