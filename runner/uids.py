"""Host uids for sandboxes: one per running prebuild (or workspace build), never shared.

Why. RLIMIT_NPROC counts the processes of a host uid. When every sandbox ran as one uid, a
fork bomb in one prebuild used up the budget of every other prebuild on the runner. With a
uid of its own, a prebuild's max_processes is its own budget, and its files on the host are
its own too (each workspace is 0700, owned by its uid).

How. The uids FIRST..FIRST+COUNT-1 (uid and gid alike, no passwd entry needed) are leased
through one lock file per uid in a root-only folder. The lock is flock(2): it belongs to the
open file, so two threads of one worker get two different uids, and the kernel drops it when
the holder exits, even by SIGKILL, so a crashed worker leaks no uid. A uid that still has a
live process (a holder from another data directory on the same host, say) is skipped.

Only root switches uids: when the runner is not root, bwrap runs as the runner's own user and
a lease is None.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .errors import SandboxError

FIRST_UID = 61000
DEFAULT_COUNT = 256
# A tmpfs, root-only and cleared at boot: where a runner without a configured folder keeps its
# locks (the Django side passes a folder under its data directory).
DEFAULT_LOCK_DIR = Path("/run/prebuild-runner/sandbox-uids")


def process_uids() -> dict[int, list[int]]:
    """Live pids by their effective uid (the owner of /proc/PID), from one scan of /proc."""
    found: dict[int, list[int]] = {}
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                with contextlib.suppress(OSError):  # exited meanwhile
                    found.setdefault(entry.stat(follow_symlinks=False).st_uid, []).append(int(entry.name))
    return found


def task_count(uid: int) -> int:
    """The tasks (threads included, as RLIMIT_NPROC counts them) whose real uid is `uid`."""
    total = 0
    for pid in process_uids().get(uid, ()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        real_uid = threads = None
        for line in status.splitlines():
            if line.startswith("Uid:"):
                real_uid = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
        if real_uid == uid and "State:\tZ" not in status:
            total += threads or 1
    return total


class UidPool:
    """Leases sandbox uids to runs on one host; see the module docstring."""

    def __init__(self, lock_dir: Path = DEFAULT_LOCK_DIR, first: int = FIRST_UID, count: int = DEFAULT_COUNT):
        if first < 1000 or count < 1:
            raise ValueError("sandbox uids start at 1000 or above, and there is at least one")
        self.lock_dir, self.first, self.count = Path(lock_dir), first, count

    @contextlib.contextmanager
    def lease(self) -> Iterator[int | None]:
        """A uid of its own for the duration of the block (None when the runner is not root)."""
        if os.geteuid() != 0:
            yield None
            return
        fd, uid = self._acquire()
        try:
            yield uid
        finally:
            os.close(fd)  # releases the lock

    def _acquire(self) -> tuple[int, int]:
        self._prepare_dir()
        busy = process_uids()
        for uid in range(self.first, self.first + self.count):
            if uid in busy:
                continue
            fd = os.open(self.lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise
            # Checked again under the lock: a process that appeared since the scan (a holder that
            # just started its sandbox) means the uid is someone else's after all.
            if uid in process_uids():
                os.close(fd)
                continue
            return fd, uid
        raise SandboxError(
            f"all {self.count} sandbox uids ({self.first}..{self.first + self.count - 1}) are in use on this "
            "runner: wait for a run to end, or raise RUNNER_SANDBOX_UIDS"
        )

    def _prepare_dir(self) -> None:
        self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(self.lock_dir)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise SandboxError(f"the sandbox uid lock folder {self.lock_dir} is not a directory owned by this user")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.lock_dir, 0o700)


_default_pool: UidPool | None = None


def default_pool() -> UidPool:
    """The pool of callers that pass none (the runner's own tests, benchmarks, scripts)."""
    global _default_pool
    if _default_pool is None:
        _default_pool = UidPool()
    return _default_pool
