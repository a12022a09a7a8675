"""One whole prebuild: clone, lifecycle commands in the sandbox, snapshot.

The Django task builds a PrebuildJob, implements Reporter (writing to the database) and
calls run_prebuild(), which never raises: every outcome, including an internal error, is
a PrebuildOutcome with a message fit for a person. All Reporter methods are called from
the thread that called run_prebuild().

Phases reported: STARTING (clone, read devcontainer.json), RUNNING (lifecycle commands),
STOPPING (every process of the commands is gone when it ends), SNAPSHOTTING (only when
the commands succeeded). The timeout bounds clone and lifecycle commands, not the
snapshot. The workspace is left in place: remove it with cleanup_workspace() when done.

The run leases a sandbox uid of its own (job.uids, runner.uids) for its whole length, so that
its commands share one process budget that no other prebuild on the runner touches; budgets
that no rlimit enforces (disk, a fork bomb pinned at its process limit) are watched by
run_lifecycle and fail the prebuild with a message naming them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from . import checkout, container_run, devcontainer
from ._fs import cleanup_tree
from .errors import CheckoutError, DevcontainerError, LifecycleFailed, SandboxError, Stopped, StopReason, StoreError
from .lifecycle import LogLine, StepEvent, now, run_lifecycle
from .sandbox import SandboxLimits
from .snapshot import SnapshotInfo, create_snapshot
from .store import SnapshotStore
from .uids import UidPool, default_pool

HEARTBEAT_INTERVAL = 2.0


class Reporter(Protocol):
    """What run_prebuild tells the outside world (implemented by the Django side)."""

    def phase(self, name: str) -> None:
        """'STARTING', 'RUNNING', 'STOPPING' or 'SNAPSHOTTING'."""

    def logs(self, lines: list[LogLine]) -> None:
        """A batch of (step, stream, text) lines, in order per (step, stream).

        step is 'clone' or a lifecycle step such as 'onCreateCommand' or
        'onCreateCommand:marker'; stream is 'stdout' or 'stderr'. Batches can hold hundreds
        of lines: write them in bulk.
        """

    def step(self, event: StepEvent) -> None:
        """Start (status 'running') and end of each step: 'clone', each lifecycle command, 'snapshot'."""

    def progress(self, percent: int) -> None:
        """Snapshot progress, 0..100; may repeat a value."""

    def should_stop(self) -> str | None:
        """A reason to stop the prebuild (StopReason.CANCELLED, StopReason.RUNNER_LOST, or any
        other text, shown as "stopped: <reason>"); None to go on. Polled about every 0.4 s."""

    def heartbeat(self) -> None:
        """Called at least every HEARTBEAT_INTERVAL seconds while work runs."""


class NullReporter:
    """A Reporter that ignores everything (benchmarks, scripts)."""

    def phase(self, name: str) -> None:
        pass

    def logs(self, lines: list[LogLine]) -> None:
        pass

    def step(self, event: StepEvent) -> None:
        pass

    def progress(self, percent: int) -> None:
        pass

    def should_stop(self) -> str | None:
        return None

    def heartbeat(self) -> None:
        pass


@dataclass(frozen=True)
class PrebuildJob:
    prebuild_id: str
    repository_url: str
    branch: str
    workspace: Path  # must not exist yet
    store: SnapshotStore
    snapshot_id: str
    access_token: str | None = field(default=None, repr=False)
    devcontainer_path: str | None = None  # relative to the repository root
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    timeout_seconds: float = 3600
    allow_unsandboxed: bool = False
    uids: UidPool | None = None  # None: runner.uids.default_pool()
    # Where a local repository may be cloned from (checkout.LocalSources); None: no policy.
    local_sources: checkout.LocalSources | None = None
    # The container backend (podman and the Dev Containers CLI); None: the bubblewrap sandbox.
    container: container_run.ContainerBackend | None = None
    # The run's secrets, {name: value}: the lifecycle commands' environment only (never argv, never
    # the snapshot). The caller masks them in whatever the reporter stores.
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)


class PrebuildResult(StrEnum):
    """How a run ended. String values: they are what the worker logs."""

    COMPLETED = "completed"  # the snapshot is stored
    FAILED = "failed"  # failure_message says why
    CANCELLED = "cancelled"  # stopped on request (failure_message set unless it was StopReason.CANCELLED)


@dataclass(frozen=True)
class PrebuildOutcome:
    result: PrebuildResult
    failure_message: str | None = None
    warning_message: str | None = None
    commit_id: str | None = None
    snapshot: SnapshotInfo | None = None


def format_duration(seconds: float) -> str:
    """90 -> '1m 30s', 3600 -> '1h', 45 -> '45s'."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if minutes:
        parts.append(f"{minutes}m")
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts)


def cleanup_workspace(path: Path) -> None:
    """Remove a workspace like rm -rf, including read-only directories; no error if missing."""
    cleanup_tree(Path(path))


def run_prebuild(job: PrebuildJob, reporter: Reporter) -> PrebuildOutcome:
    run = _Run(job, reporter)
    try:
        with (job.uids or default_pool()).lease() as uid:
            run.uid = uid
            return run.execute()
    except Stopped as stop:
        return run.stopped(stop.reason)
    except (CheckoutError, DevcontainerError, LifecycleFailed, SandboxError, StoreError) as exc:
        return run.outcome(PrebuildResult.FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - the task must get an outcome, never a traceback
        return run.outcome(PrebuildResult.FAILED, f"internal runner error: {type(exc).__name__}: {exc}")


class _Run:
    def __init__(self, job: PrebuildJob, reporter: Reporter):
        self.job, self.reporter = job, reporter
        self.warnings: list[str] = []
        self.commit_id: str | None = None
        self.last_beat = 0.0
        self.uid: int | None = None
        self.deadline = time.monotonic() + job.timeout_seconds

    def outcome(
        self, result: PrebuildResult, failure: str | None = None, snapshot: SnapshotInfo | None = None
    ) -> PrebuildOutcome:
        return PrebuildOutcome(result, failure, " ".join(self.warnings) or None, self.commit_id, snapshot)

    def stopped(self, reason: str) -> PrebuildOutcome:
        if reason == StopReason.TIMEOUT:
            return self.outcome(PrebuildResult.FAILED, f"timed out after {format_duration(self.job.timeout_seconds)}")
        return self.outcome(PrebuildResult.CANCELLED, None if reason == StopReason.CANCELLED else f"stopped: {reason}")

    def tick(self) -> None:
        now_ = time.monotonic()
        if now_ - self.last_beat >= HEARTBEAT_INTERVAL:
            self.last_beat = now_
            self.reporter.heartbeat()

    def log_lines(self, batch: list[LogLine]) -> None:
        logs = getattr(self.reporter, "logs", None)
        if logs is not None:
            logs(batch)
        else:
            for line in batch:
                self.reporter.log(*line)

    def timed_step(self, name: str, work: Callable[[], object], detail: Callable[[object], dict]):
        started = now()
        self.reporter.step(StepEvent(name, "running", started))
        try:
            result = work()
        except Stopped as stop:
            self.reporter.step(StepEvent(name, "stopped", started, now(), detail=stop.reason))
            raise
        except Exception as exc:
            self.reporter.step(StepEvent(name, "failed", started, now(), detail=str(exc)))
            raise
        self.reporter.step(StepEvent(name, "succeeded", started, now(), **detail(result)))
        return result

    def execute(self) -> PrebuildOutcome:
        job, reporter = self.job, self.reporter
        reporter.phase("STARTING")
        reporter.heartbeat()
        workspace = Path(job.workspace)
        if workspace.exists():
            raise SandboxError(f"workspace {workspace} already exists")

        def on_clone_line(stream: str, text: str) -> None:
            self.log_lines([("clone", stream, text)])

        self.commit_id = self.timed_step(
            "clone",
            lambda: checkout.clone(
                job.repository_url,
                job.branch,
                workspace,
                access_token=job.access_token,
                on_line=on_clone_line,
                should_stop=reporter.should_stop,
                deadline=self.deadline,
                on_tick=self.tick,
                local_sources=job.local_sources,
            ),
            lambda commit: {"detail": commit},
        )

        config = devcontainer.load_devcontainer(workspace, job.devcontainer_path)
        if job.container is not None:
            return self.execute_in_container(workspace, config)
        if config is None:
            paths = " or ".join(devcontainer.candidate_paths(job.devcontainer_path))
            self.warnings.append(f"No devcontainer.json found at {paths}; the snapshot holds the plain checkout.")
        elif config.unsupported_keys:
            self.warnings.append(
                f"{config.path}: the local runner cannot honour {', '.join(config.unsupported_keys)}; "
                "lifecycle commands ran on the runner host image inside a sandbox."
            )

        reporter.phase("RUNNING")
        try:
            if config is not None and config.hooks:
                run_lifecycle(
                    config,
                    workspace=workspace,
                    limits=job.limits,
                    on_lines=self.log_lines,
                    on_step=reporter.step,
                    should_stop=reporter.should_stop,
                    deadline=self.deadline,
                    allow_unsandboxed=job.allow_unsandboxed,
                    on_tick=self.tick,
                    uid=self.uid,
                    env=job.secret_env,
                )
        finally:
            # run_lifecycle returns or raises only once every process of the commands is gone
            # (the sandbox waits for its PID namespace to empty), so stopping is already done.
            reporter.phase("STOPPING")

        info = self.snapshot_step(
            lambda on_progress: create_snapshot(
                workspace, job.store, job.snapshot_id, on_progress, should_stop=reporter.should_stop
            ),
            detail=lambda snap: snap.sha256,
        )
        return self.outcome(PrebuildResult.COMPLETED, snapshot=info)

    def snapshot_step(self, work: Callable[[Callable[[int], None]], SnapshotInfo], detail) -> SnapshotInfo:
        """SNAPSHOTTING, and the snapshot step of the timeline around work(on_progress)."""
        self.reporter.phase("SNAPSHOTTING")

        def on_progress(percent: int) -> None:
            self.reporter.progress(percent)
            self.tick()

        return self.timed_step(
            "snapshot", lambda: work(on_progress), lambda snap: {"bytes": snap.size_bytes, "detail": detail(snap)}
        )

    def execute_in_container(self, workspace: Path, config: devcontainer.DevcontainerConfig | None) -> PrebuildOutcome:
        job, reporter, backend = self.job, self.reporter, self.job.container
        if config is None:
            paths = " or ".join(devcontainer.candidate_paths(job.devcontainer_path))
            self.warnings.append(
                f"No devcontainer.json found at {paths}; the prebuild used the default image {backend.default_image}."
            )
        if job.secret_env:
            # Not yet: the reference CLI passes a lifecycle command's environment as `podman exec -e
            # NAME=value`, which the host's process list would show. Said, rather than left unsaid.
            names = ", ".join(sorted(job.secret_env))
            self.warnings.append(f"Secrets ({names}) are not injected on the container backend yet.")
        prepared = container_run.prepare_config(workspace, config, backend.default_image)
        if prepared.vetted.warning():
            self.warnings.append(prepared.vetted.warning() + ".")
        run_dir = backend.work_dir / f"run-{job.prebuild_id}"
        cleanup_tree(run_dir)
        try:
            reporter.phase("RUNNING")
            try:
                result = container_run.run_cli(
                    backend,
                    run_id=job.prebuild_id,
                    workspace=workspace,
                    config_path=prepared.path,
                    limits=job.limits,
                    on_lines=self.log_lines,
                    on_step=reporter.step,
                    should_stop=reporter.should_stop,
                    deadline=self.deadline,
                    on_tick=self.tick,
                    run_dir=run_dir,
                )
            finally:
                prepared.restore()
                reporter.phase("STOPPING")
            info = self.snapshot_step(
                lambda on_progress: container_run.snapshot_container(
                    backend,
                    container_id=result.container_id,
                    workspace=workspace,
                    workspace_folder=result.workspace_folder or f"/workspaces/{workspace.name}",
                    snapshot_id=job.snapshot_id,
                    on_progress=on_progress,
                    should_stop=reporter.should_stop,
                ),
                detail=lambda snap: snap.image,
            )
            return self.outcome(PrebuildResult.COMPLETED, snapshot=info)
        finally:
            # No container outlives its prebuild: its snapshot is in the registry now, or it failed.
            container_run.cleanup_run(backend, job.prebuild_id, run_dir)
