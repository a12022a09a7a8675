"""Run the prebuild lifecycle of a devcontainer: onCreateCommand, then updateContentCommand.

A hook written as an object runs its named commands in parallel; each is logged and
timed under 'hook:name' (e.g. 'onCreateCommand:marker'). The parallel commands are
pumped together from the calling thread, so every callback runs on that thread. When one
of them fails the others run to their end, and the first failing one (in the order of the
file) is reported.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ._proc import ShouldStop, pump
from .devcontainer import Command, DevcontainerConfig
from .errors import LifecycleFailed, Stopped
from .sandbox import SandboxLimits, start_sandboxed

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
) -> None:
    """Run every prebuild hook in order.

    Raises LifecycleFailed("onCreateCommand exited with status 3") on a non-zero exit, and
    errors.Stopped(reason) when stopped or past the deadline; in every case no process of
    the commands is left when this returns or raises.
    """
    emit = on_step or (lambda event: None)
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
                    )
                )
                emit(StepEvent(command.step, "running", started[command.step], detail=describe(command)))
        except BaseException:
            for w in watched:
                w.signal_all(signal.SIGKILL)
            pump(watched, on_lines=on_lines)
            raise
        # The pump labels each line with its process's label, which is the step name.
        results = pump(watched, on_lines=on_lines, should_stop=should_stop, deadline=deadline, on_tick=on_tick)
        failure: LifecycleFailed | None = None
        stopped: str | None = None
        for command in hook.commands:
            result = results[command.step]
            if result.stopped_reason:
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
            emit(
                StepEvent(
                    command.step, status, started[command.step], now(), result.exit_status, detail=result.stopped_reason
                )
            )
        if stopped:
            raise Stopped(stopped)
        if failure is not None:
            raise failure


def _exit_text(status: int | None) -> str:
    if status is not None and status < 0:
        return f"was killed by signal {-status}"
    return f"exited with status {status}"
