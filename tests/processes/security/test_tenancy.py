"""One tenant cannot starve another on a shared runner (issue 11, item 6).

Three prebuilds run at the same time on one runner, each from its own thread calling
runner.executor.run_prebuild as the worker does: a fork bomb, a disk filler (two separate
prebuilds, so that each failure is seen with its own message) and a normal prebuild that needs a
few dozen processes. The attackers must end with a clear failure, long before their timeout; the
normal prebuild must complete, even though it forks while the bomb sits at its process limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from runner.executor import NullReporter, PrebuildJob, PrebuildResult, run_prebuild
from runner.sandbox import SandboxLimits, find_bwrap, run_sandboxed
from runner.store import LocalSnapshotStore
from runner.uids import UidPool, process_uids

pytestmark = [
    pytest.mark.skipif(find_bwrap() is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="uids per sandbox need a root runner"),
]

MAX_PROCESSES = 64
DISK_BUDGET = 20 << 20
ORIGIN = "environment class 'small'"
# A fork bomb that survives its limit: every process forks forever and only pauses when a fork fails
# (the classic shell bomb dies out by itself under RLIMIT_NPROC; this one does not).
FORK_BOMB = "python3 -c 'import os, time\nwhile True:\n    try: os.fork()\n    except OSError: time.sleep(0.05)'"
# 40 MiB in one file (under the per-file limit), then it waits: only the disk watcher can end it.
DISK_FILLER = "head -c 41943040 /dev/zero > filler.bin && echo filled && sleep 600"
# A build that needs 30 processes at once, well under its own limit of 64.
NORMAL = "for i in $(seq 30); do sleep 1 & done; wait && echo neighbour built > built.txt && echo neighbour done"
# Far beyond how long the watchers need (a few seconds), far below the test's own bound.
TIMEOUT = 90


@pytest.fixture
def uids(work_dir):
    # The product's range by default, with locks of this test's own; a uid that another test run on
    # this machine uses at the moment is skipped by the pool (it has live processes).
    return UidPool(work_dir / "uids")


def make_repo(dest: Path, on_create) -> Path:
    (dest / ".devcontainer").mkdir(parents=True)
    (dest / ".devcontainer" / "devcontainer.json").write_text(json.dumps({"onCreateCommand": on_create}))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "repo"]):
        subprocess.run(["git", "-C", str(dest), *argv], check=True, env=env, capture_output=True)
    return dest


class Run(threading.Thread):
    """One prebuild on its own thread; outcome and log lines once it ends."""

    def __init__(self, name: str, repo: Path, work_dir: Path, uids: UidPool):
        super().__init__(name=name, daemon=True)
        self.lines: list[tuple[str, str, str]] = []
        self.outcome = None
        self.job = PrebuildJob(
            prebuild_id=name,
            repository_url=str(repo),
            branch="main",
            workspace=work_dir / f"ws-{name}",
            store=LocalSnapshotStore(work_dir / "store", fsync=False),
            snapshot_id=name,
            limits=SandboxLimits(
                max_processes=MAX_PROCESSES,
                memory_bytes=1 << 30,
                max_file_size_bytes=64 << 20,
                disk_bytes=DISK_BUDGET,
                origin=ORIGIN,
            ),
            timeout_seconds=TIMEOUT,
            uids=uids,
        )

    def run(self):
        reporter = _Reporter(self.lines)
        self.outcome = run_prebuild(self.job, reporter)

    def text(self) -> str:
        return "\n".join(text for _, _, text in self.lines)


class _Reporter(NullReporter):
    """Keeps the log lines; ignores the rest."""

    def __init__(self, lines):
        self.lines = lines

    def logs(self, lines):
        self.lines.extend(lines)


def sandbox_tasks(workspace: Path) -> int:
    """Processes whose mount table shows this workspace (every process of its sandbox has it)."""
    count = 0
    for uid, pids in process_uids().items():
        if uid == 0:
            continue
        for pid in pids:
            try:
                if str(workspace) in Path(f"/proc/{pid}/mountinfo").read_text(errors="replace"):
                    count += 1
            except OSError:
                continue
    return count


def test_a_fork_bomb_and_a_disk_filler_fail_clearly_while_a_neighbour_completes(work_dir, uids):
    bomb = Run("bomb", make_repo(work_dir / "repo-bomb", FORK_BOMB), work_dir, uids)
    filler = Run("filler", make_repo(work_dir / "repo-filler", DISK_FILLER), work_dir, uids)
    normal = Run("normal", make_repo(work_dir / "repo-normal", NORMAL), work_dir, uids)
    bomb.start()
    filler.start()
    # The neighbour starts once the bomb has used up its process budget: with a shared uid, every
    # fork of the neighbour would fail from then on.
    deadline = time.monotonic() + 30
    while sandbox_tasks(bomb.job.workspace) < MAX_PROCESSES - 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandbox_tasks(bomb.job.workspace) >= MAX_PROCESSES - 8, "the fork bomb never reached its limit"
    normal.start()
    for run in (bomb, filler, normal):
        run.join(timeout=TIMEOUT + 30)
        assert not run.is_alive(), f"{run.name} did not end"

    assert normal.outcome.result == PrebuildResult.COMPLETED, (normal.outcome.failure_message, normal.text()[-2000:])
    assert "neighbour done" in normal.text()
    assert "fork" not in normal.text().lower()  # no "Cannot fork": it never felt the bomb

    assert bomb.outcome.result == PrebuildResult.FAILED
    message = bomb.outcome.failure_message
    assert f"process limit of {MAX_PROCESSES}" in message and "fork bomb" in message and ORIGIN in message
    assert not message.startswith("timed out")

    assert filler.outcome.result == PrebuildResult.FAILED
    assert filler.outcome.failure_message.startswith("stopped: the workspace used ")
    assert f"more than its disk budget of 20 MiB ({ORIGIN})" in filler.outcome.failure_message

    for run in (bomb, filler, normal):
        assert sandbox_tasks(run.job.workspace) == 0, f"{run.name} left processes behind"


def test_runs_at_the_same_time_get_different_uids_and_each_owns_its_workspace(work_dir, uids):
    """Two named commands of one run share its uid; another run has another one."""
    seen = {}
    with uids.lease() as first, uids.lease() as second:
        assert first != second
        for uid in (first, second):
            workspace = work_dir / f"ws-{uid}"
            workspace.mkdir()
            result = run_sandboxed(["sh", "-c", "echo ok > mine"], workspace=workspace, limits=SandboxLimits(), uid=uid)
            assert result.exit_status == 0
            st = workspace.stat()
            seen[uid] = (st.st_uid, st.st_mode & 0o777, (workspace / "mine").stat().st_uid)
    assert seen == {first: (first, 0o700, first), second: (second, 0o700, second)}


def test_tmp_is_size_limited(work_dir):
    workspace = work_dir / "ws"
    workspace.mkdir()
    lines = []
    result = run_sandboxed(
        ["sh", "-c", "head -c 3145728 /dev/zero > /tmp/big; echo status $?; df -k /tmp | tail -1"],
        workspace=workspace,
        limits=SandboxLimits(tmp_bytes=1 << 20),
        on_line=lambda stream, text: lines.append(text),
    )
    assert result.exit_status == 0
    out = "\n".join(lines)
    assert "No space left on device" in out and "status 1" in out
    size_kib = int(lines[-1].split()[1])
    assert size_kib == 1024


def test_the_named_commands_of_one_prebuild_share_its_uid_and_no_one_elses(work_dir, uids):
    show = "cat /proc/self/uid_map; sleep 1"  # inside: '1000 <host uid> 1'
    repo = make_repo(work_dir / "repo-named", {"first": show, "second": show})
    with uids.lease() as taken:  # a neighbour's run holds this uid meanwhile
        run = Run("named", repo, work_dir, uids)
        run.run()
    assert run.outcome.result == PrebuildResult.COMPLETED, run.outcome.failure_message
    host_uids = {step: int(text.split()[1]) for step, _, text in run.lines if step.startswith("onCreateCommand:")}
    assert set(host_uids) == {"onCreateCommand:first", "onCreateCommand:second"}
    assert len(set(host_uids.values())) == 1 and taken not in host_uids.values()
