"""Run the prebuild lifecycle of a devcontainer: onCreateCommand, then updateContentCommand.

A hook written as an object runs its named commands in parallel; each is logged and
timed under 'hook:name' (e.g. 'onCreateCommand:marker'). The parallel commands are
pumped together from the calling thread, so every callback runs on that thread. When one
of them fails the others run to their end, and the first failing one (in the order of the
file) is reported.

Identity. All commands of one run_lifecycle share one sandbox uid (the caller's, or one
leased here for the whole lifecycle), so max_processes is the budget of this run alone.

Watchers. Two budgets that no rlimit enforces are watched while the commands run, from the
pump's should_stop poll (so on the calling thread); exceeding one stops every command of the
hook and fails the run with LifecycleFailed and a message that names the budget:
- disk: the workspace's allocated blocks (st_blocks, summed with os.scandir), measured every
  DISK_INTERVAL seconds (or more rarely if a scan takes long, see _Watch), and once more when
  each hook ends, against limits.disk_bytes;
- processes: a fork bomb is contained by RLIMIT_NPROC, but then it would simply sit at its
  limit until the timeout. The run's uid's tasks are counted every PROCESS_INTERVAL seconds;
  at the limit for FORK_BOMB_SECONDS straight, the run is stopped.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ._proc import ShouldStop, pump
from .devcontainer import Command, DevcontainerConfig
from .errors import LifecycleFailed, Stopped
from .sandbox import SandboxLimits, start_sandboxed
from .store import human_bytes
from .uids import default_pool, task_count

DISK_INTERVAL = 2.0
# A scan of a huge tree must not eat the runner: wait at least this many times its duration.
DISK_SCAN_COST_FACTOR = 20
PROCESS_INTERVAL = 1.0
# A legitimate build may touch its process limit for a moment (make -j bursts); forks then fail
# and it either backs off or fails by itself. Pinned at the limit (within 5 %, at least 2 tasks,
# since tasks exit and fork all the time) on every sample for this long, it is a fork bomb, whose
# children retry forever; a build that really needs that many tasks needs a bigger class.
FORK_BOMB_SECONDS = 5.0

LogLine = tuple[str, str, str]  # (step, stream, text)


@dataclass(frozen=True)
class StepEvent:
    """Start or end of a step of a prebuild, for a timeline.

    status: 'running' at the start; 'succeeded', 'failed' or 'stopped' at the end.
    """

    step: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    exit_status: int | None = None
    detail: str | None = None
    bytes: int | None = None


def now() -> datetime:
    return datetime.now(UTC)


def describe(command: Command) -> str:
    if command.argv[:2] == ("/bin/sh", "-c"):
        return command.argv[2]
    return shlex.join(command.argv)


def run_lifecycle(
    config: DevcontainerConfig,
    *,
    workspace: Path,
    limits: SandboxLimits,
    on_lines: Callable[[list[LogLine]], None],
    on_step: Callable[[StepEvent], None] | None = None,
    should_stop: ShouldStop | None = None,
    deadline: float | None = None,
    allow_unsandboxed: bool = False,
    on_tick: Callable[[], None] | None = None,
    uid: int | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run every prebuild hook in order.

    env: variables every command gets besides the sandbox's own (the run's secrets; see
    sandbox.start_sandboxed for how they stay off any command line).

    Raises LifecycleFailed("onCreateCommand exited with status 3") on a non-zero exit or an
    exceeded budget (see Watchers), and errors.Stopped(reason) when stopped or past the
    deadline; in every case no process of the commands is left when this returns or raises.
    uid: the run's sandbox uid (runner.uids); when None, one is leased for this lifecycle.
    """
    with contextlib.ExitStack() as stack:
        if uid is None:
            uid = stack.enter_context(default_pool().lease())
        _run_hooks(
            config, workspace, limits, on_lines, on_step, should_stop, deadline, allow_unsandboxed, on_tick, uid, env
        )


def _run_hooks(
    config, workspace, limits, on_lines, on_step, should_stop, deadline, allow_unsandboxed, on_tick, uid, env=None
):
    emit = on_step or (lambda event: None)
    watch = _Watch(Path(workspace), limits, uid)

    def stop_reason() -> str | None:
        return watch.check() or (should_stop() if should_stop is not None else None)

    for hook in config.hooks:
        watched = []
        started = {}
        try:
            for command in hook.commands:
                started[command.step] = now()
                watched.append(
                    start_sandboxed(
                        command.argv,
                        workspace=workspace,
                        limits=limits,
                        allow_unsandboxed=allow_unsandboxed,
                        label=command.step,
                        uid=uid,
                        env=env,
                    )
                )
                emit(StepEvent(command.step, "running", started[command.step], detail=describe(command)))
        except BaseException:
            for w in watched:
                w.signal_all(signal.SIGKILL)
            pump(watched, on_lines=on_lines)
            raise
        # The pump labels each line with its process's label, which is the step name.
        results = pump(watched, on_lines=on_lines, should_stop=stop_reason, deadline=deadline, on_tick=on_tick)
        watch.final_check()
        failure: LifecycleFailed | None = None
        stopped: str | None = None
        for command in hook.commands:
            result = results[command.step]
            if watch.violation and (result.stopped_reason == watch.violation or result.exit_status != 0):
                # Stopped by a watcher (or failing because of what it saw): the budget is the cause.
                status = "failed"
                failure = failure or LifecycleFailed(watch.violation, step=command.step, exit_status=None)
            elif result.stopped_reason:
                status = "stopped"
                stopped = stopped or result.stopped_reason
            elif result.exit_status == 0:
                status = "succeeded"
            else:
                status = "failed"
                if failure is None:
                    failure = LifecycleFailed(
                        f"{command.step} {_exit_text(result.exit_status)}",
                        step=command.step,
                        exit_status=result.exit_status,
                    )
            detail = watch.violation if status == "failed" and watch.violation else result.stopped_reason
            emit(StepEvent(command.step, status, started[command.step], now(), result.exit_status, detail=detail))
        if watch.violation:
            raise failure or LifecycleFailed(watch.violation, step=hook.commands[-1].step, exit_status=None)
        if stopped:
            raise Stopped(stopped)
        if failure is not None:
            raise failure


def _exit_text(status: int | None) -> str:
    if status is not None and status < 0:
        return f"was killed by signal {-status}"
    return f"exited with status {status}"


class _Watch:
    """The disk and process budgets of one run; check() is polled by the pump (~0.4 s)."""

    def __init__(self, workspace: Path, limits: SandboxLimits, uid: int | None, clock=time.monotonic):
        self.workspace, self.limits, self.uid, self.clock = workspace, limits, uid, clock
        self.violation: str | None = None
        self.next_disk = 0.0
        self.next_processes = 0.0
        self.of = f" ({limits.origin})" if limits.origin else ""
        self.fork_bomb = ForkBombWatch(limits.max_processes or 0, self.of)

    def check(self) -> str | None:
        if self.violation is None:
            now_ = self.clock()
            if self.limits.disk_bytes is not None and now_ >= self.next_disk:
                self._check_disk()
                self.next_disk = now_ + max(DISK_INTERVAL, DISK_SCAN_COST_FACTOR * (self.clock() - now_))
            # Only a uid of the run's own counts this run's processes alone (the runner is root).
            watch_processes = self.uid is not None and self.limits.max_processes
            if self.violation is None and watch_processes and now_ >= self.next_processes:
                self.next_processes = now_ + PROCESS_INTERVAL
                self._check_processes(now_)
        return self.violation

    def final_check(self) -> None:
        """After a hook: a command that filled the disk and exited between two scans is caught too."""
        if self.violation is None and self.limits.disk_bytes is not None:
            self._check_disk()

    def _check_disk(self) -> None:
        used = disk_usage(self.workspace)
        if used > self.limits.disk_bytes:
            self.violation = (
                f"stopped: the workspace used {human_bytes(used)}, more than its disk budget of "
                f"{_size(self.limits.disk_bytes)}{self.of}"
            )

    def _check_processes(self, now_: float) -> None:
        self.violation = self.fork_bomb.sample(task_count(self.uid), now_)


class ForkBombWatch:
    """Samples of a run's task count against its limit: pinned at the limit (within 5 %, at least
    2 tasks) on every sample for FORK_BOMB_SECONDS is a fork bomb. Both backends judge so."""

    def __init__(self, limit: int, of: str = ""):
        self.limit, self.of = limit, of
        self.pinned_since: float | None = None

    def sample(self, tasks: int, now_: float) -> str | None:
        """The violation once it is one, else None."""
        if tasks < self.limit - max(2, self.limit // 20):
            self.pinned_since = None
            return None
        if self.pinned_since is None:
            self.pinned_since = now_
            return None
        if now_ - self.pinned_since < FORK_BOMB_SECONDS:
            return None
        return (
            f"stopped: the commands kept hitting their process limit of {self.limit}{self.of} "
            f"for {FORK_BOMB_SECONDS:.0f}s: a fork bomb?"
        )


def disk_usage(root: Path) -> int:
    """Bytes allocated to the tree (st_blocks, as du counts them; hard links once), without
    following symlinks. Entries vanishing during the scan are skipped."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        path = stack.pop()
        try:
            entries = os.scandir(path)
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def _size(n: int) -> str:
    """1 GiB, 20 MiB: budgets are round numbers, say them as such."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return human_bytes(n)
