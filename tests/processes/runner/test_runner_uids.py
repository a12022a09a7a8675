from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from runner.errors import SandboxError
from runner.lifecycle import disk_usage
from runner.uids import UidPool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="uids are only leased by a root runner")

# A range no other test uses, so that live processes of other runs never make a uid look busy.
FIRST = 64000

HOLDER = """
import sys
from runner.uids import UidPool
with UidPool(sys.argv[1], int(sys.argv[2]), 2).lease() as uid:
    print(uid, flush=True)
    sys.stdin.read()
"""


def hold_in_another_process(lock_dir):
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(FIRST)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    return child, int(child.stdout.readline())


def test_threads_get_different_uids_and_a_released_one_comes_back(work_dir):
    pool = UidPool(work_dir / "uids", FIRST, 4)
    got, ready, done = [], threading.Barrier(3), threading.Event()

    def lease():
        with pool.lease() as uid:
            got.append(uid)
            ready.wait()
            done.wait()

    threads = [threading.Thread(target=lease) for _ in range(2)]
    for t in threads:
        t.start()
    ready.wait()
    assert len(set(got)) == 2
    done.set()
    for t in threads:
        t.join()
    with pool.lease() as uid:
        assert uid == FIRST
    lock_dir = work_dir / "uids"
    assert lock_dir.stat().st_mode & 0o777 == 0o700


def test_a_uid_held_by_another_process_is_skipped_and_freed_when_it_is_killed(work_dir):
    pool = UidPool(work_dir / "uids", FIRST, 2)
    child, held = hold_in_another_process(work_dir / "uids")
    try:
        assert held == FIRST
        with pool.lease() as uid:
            assert uid == FIRST + 1
            with pytest.raises(SandboxError, match="all 2 sandbox uids"), pool.lease():
                pass
    finally:
        child.send_signal(signal.SIGKILL)  # a crashed holder: the kernel drops its lock
        child.wait()
    with pool.lease() as uid:
        assert uid == FIRST


def test_a_uid_with_live_processes_is_skipped(work_dir):
    pool = UidPool(work_dir / "uids", FIRST, 2)
    sleeper = subprocess.Popen(["sleep", "60"], user=FIRST, group=FIRST, extra_groups=[])
    try:
        with pool.lease() as uid:
            assert uid == FIRST + 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_disk_usage_counts_allocated_blocks_and_hard_links_once(work_dir):
    tree = work_dir / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "big").write_bytes(os.urandom(1 << 20))
    os.link(tree / "a" / "b" / "big", tree / "again")
    (tree / "sparse").touch()
    os.truncate(tree / "sparse", 1 << 30)  # a size but no blocks: no disk used
    os.symlink("/usr", tree / "link")  # not followed
    used = disk_usage(tree)
    assert (1 << 20) <= used < (1 << 20) + (256 << 10)
