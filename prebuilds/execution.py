"""Runs a prebuild on this worker: claims it, hands it to runner.run_prebuild(), and writes what
the runner reports (phases, logs, steps, progress, heartbeat) into status through prebuilds/status.py.

The runner is plain Python and knows nothing of Django; this module is the only bridge.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from core.errors import FailedPrecondition
from core.masking import secret_masker
from core.paths import path_redactor
from prebuilds import logstore, status
from prebuilds.models import Prebuild, PrebuildPhase
from projects.runner_bridge import (
    container_backend,
    delete_snapshot,
    ensure_traversable,
    sandbox_options,
    snapshot_registry,
    snapshot_store,
)
from projects.services import prebuild_secret_env
from runner.errors import SandboxUnavailable, StopReason
from runner.executor import PrebuildJob, PrebuildOutcome, PrebuildResult, cleanup_workspace, run_prebuild
from runner.lifecycle import StepEvent

log = logging.getLogger(__name__)

LOG_FLUSH_SECONDS = 0.25
LOG_FLUSH_LINES = 2000
HEARTBEAT_WRITE_SECONDS = 5.0
STOP_POLL_SECONDS = 0.5
PROGRESS_WRITE_SECONDS = 0.2


def workspace_path(prebuild_id) -> Path:
    return settings.WORKSPACES_DIR / str(prebuild_id)


def checkout_name(repository_url: str) -> str:
    """The checkout's folder name, which the container backend's workspace is named after
    (/workspaces/<name>, as the Dev Containers CLI and Codespaces name it)."""
    name = repository_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip(".-")
    return name[:100] or "workspace"


class DatabaseReporter:
    """runner.executor.Reporter, writing to the database. Writes are batched and throttled so that a
    chatty build costs a few writes a second, not one per line."""

    def __init__(self, prebuild: Prebuild, secret_values=()):
        self.prebuild = prebuild
        # Every value in force for the run, masked in each line before it is buffered (so the live
        # panel, the archive and the REST logs read the masked text alone) and in status messages.
        self.mask = secret_masker(secret_values)
        self.buffer: list[tuple[str, str, str]] = []
        self.next_seq = logstore.next_seq(prebuild.id)
        self.last_flush = time.monotonic()
        self.last_heartbeat = 0.0
        self.last_stop_poll = 0.0
        self.last_progress_write = 0.0
        self.stop_reason: StopReason | None = None
        self.steps: dict[str, int] = {}

    # --- status -------------------------------------------------------------------------------
    def _set_status(self, **kwargs) -> None:
        for message in ("failure_message", "warning_message"):
            if kwargs.get(message):
                kwargs[message] = self.mask(kwargs[message])
        try:
            self.prebuild = status.prebuild_set_status(prebuild=self.prebuild, **kwargs)
        except FailedPrecondition:
            # Someone else moved the prebuild on (the reaper declared this runner lost): stop.
            self.prebuild.refresh_from_db()
            self.stop_reason = self.stop_reason or StopReason.RUNNER_LOST

    def phase(self, name: str) -> None:
        self.flush()
        if self.prebuild.phase == PrebuildPhase.CANCELLING or self.prebuild.is_terminal:
            return  # a cancelling prebuild stays CANCELLING until it is CANCELLED
        self._set_status(phase=PrebuildPhase[name])

    def progress(self, percent: int) -> None:
        now = time.monotonic()
        if percent < 100 and now - self.last_progress_write < PROGRESS_WRITE_SECONDS:
            return
        if (
            self.prebuild.phase == PrebuildPhase.SNAPSHOTTING
            and percent != self.prebuild.snapshot_completion_percentage
        ):
            self.last_progress_write = now
            self._set_status(snapshot_completion_percentage=percent)

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_WRITE_SECONDS:
            self.last_heartbeat = now
            status.prebuild_heartbeat(prebuild_id=self.prebuild.id)
        self._maybe_flush()

    def should_stop(self) -> StopReason | None:
        self._maybe_flush()
        if self.stop_reason:
            return self.stop_reason
        now = time.monotonic()
        if now - self.last_stop_poll < STOP_POLL_SECONDS:
            return None
        self.last_stop_poll = now
        desired = Prebuild.objects.filter(id=self.prebuild.id).values_list("desired_phase", flat=True).first()
        if desired in (PrebuildPhase.CANCELLED, PrebuildPhase.DELETED, None):
            self.stop_reason = StopReason.CANCELLED
            self._set_status(phase=PrebuildPhase.CANCELLING)
        return self.stop_reason

    # --- logs and steps -----------------------------------------------------------------------
    def logs(self, lines) -> None:
        # The runner's own lines (git's "Cloning into '<path>'", say) name its folders: a log
        # reader sees the place, as in status messages.
        redact = path_redactor()
        mask = self.mask
        self.buffer.extend((step, stream, redact(mask(text))) for step, stream, text in lines)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if len(self.buffer) >= LOG_FLUSH_LINES or time.monotonic() - self.last_flush >= LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        while self.buffer:
            batch, self.buffer = self.buffer[:LOG_FLUSH_LINES], self.buffer[LOG_FLUSH_LINES:]
            self.next_seq = logstore.append(self.prebuild.id, self.next_seq, batch)

    def step(self, event: StepEvent) -> None:
        self.flush()
        if event.step not in self.steps:
            self.steps[event.step] = len(self.steps)
        status.prebuild_step_report(
            prebuild_id=self.prebuild.id,
            name=event.step,
            position=self.steps[event.step],
            started_at=_aware(event.started_at),
            ended_at=_aware(event.ended_at),
            outcome=event.status,
            exit_status=event.exit_status,
            bytes=event.bytes,
        )


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and timezone.is_naive(value):
        return value.replace(tzinfo=UTC)
    return value


def execute(prebuild_id: str) -> None:
    """Run one prebuild to a terminal phase. A duplicate delivery, or a prebuild cancelled or
    deleted before it started, finds nothing to claim and returns."""
    prebuild = status.prebuild_claim(prebuild_id=prebuild_id)
    if prebuild is None:
        return
    # status.environment_id names the environment that builds the prebuild; the bubblewrap runner
    # builds in a workspace that is no environment of the API, so it stays empty.
    prebuild = status.prebuild_set_status(prebuild=prebuild, log_url=f"{settings.SITE_URL}/logs/{prebuild.id}")
    project = prebuild.project
    try:
        secret_env = prebuild_secret_env(project)
    except ImproperlyConfigured:
        # A secret no key of SECRETS_ENCRYPTION_KEYS opens: the run fails at once (never without it).
        message = "the project's secrets cannot be decrypted: check SECRETS_ENCRYPTION_KEYS"
        finish(prebuild, PrebuildOutcome(PrebuildResult.FAILED, message), None)
        return
    reporter = DatabaseReporter(prebuild, secret_env.values())
    ensure_traversable(settings.WORKSPACES_DIR)
    try:
        container = container_backend(prebuild.environment_class)
    except SandboxUnavailable as exc:
        finish(prebuild, PrebuildOutcome(PrebuildResult.FAILED, f"this runner uses the container backend: {exc}"), None)
        return
    workspace = workspace_path(prebuild.id)
    if container is not None:
        workspace.mkdir(mode=0o700, exist_ok=True)
        workspace = workspace / checkout_name(project.repository_url)
    job = PrebuildJob(
        prebuild_id=str(prebuild.id),
        repository_url=project.repository_url,
        branch=project.branch,
        workspace=workspace,
        store=snapshot_store(),
        snapshot_id=str(prebuild.id),
        access_token=project.access_token or None,
        devcontainer_path=project.devcontainer_path,
        timeout_seconds=prebuild.timeout.total_seconds(),
        container=container,
        secret_env=secret_env,
        **sandbox_options(prebuild.environment_class).arguments(),
    )
    log.info(
        "prebuild %s started on queue %s",
        prebuild.id,
        prebuild.environment_class.runner.queue,
        extra={"prebuild_id": str(prebuild.id), "queue": prebuild.environment_class.runner.queue},
    )
    try:
        outcome = run_prebuild(job, reporter)
    finally:
        reporter.flush()
        # The snapshot holds the workspace now (or the prebuild failed): the checkout can go.
        cleanup_workspace(workspace_path(prebuild.id))
    finish(reporter.prebuild, outcome, reporter.stop_reason, mask=reporter.mask)


def finish(prebuild: Prebuild, outcome: PrebuildOutcome, stop_reason: StopReason | None, mask=None) -> None:
    if stop_reason == StopReason.RUNNER_LOST:
        _taken_from_this_worker(prebuild)
        return
    result = outcome.result
    if result == PrebuildResult.COMPLETED and stop_reason == StopReason.CANCELLED:
        # Cancellation was asked for while the snapshot was being finished, and the prebuild already
        # shows Cancelling: it cannot become Completed, and whoever cancelled gets what they asked.
        result = PrebuildResult.CANCELLED
    if mask is not None:
        # A failing command's message may quote what it printed or ran.
        outcome = dataclasses.replace(
            outcome,
            failure_message=outcome.failure_message and mask(outcome.failure_message),
            warning_message=outcome.warning_message and mask(outcome.warning_message),
        )
    try:
        prebuild = _write_outcome(prebuild, outcome, result)
    except FailedPrecondition:
        # Moved on by someone else meanwhile (the reaper, having missed heartbeats): theirs stands.
        prebuild.refresh_from_db()
        _taken_from_this_worker(prebuild)
        return
    log.info(
        "prebuild %s finished: %s",
        prebuild.id,
        prebuild.get_phase_display(),
        extra={"prebuild_id": str(prebuild.id), "phase": prebuild.get_phase_display()},
    )
    status.prebuild_finished(prebuild=prebuild)


def _write_outcome(prebuild: Prebuild, outcome: PrebuildOutcome, result: PrebuildResult) -> Prebuild:
    warning = outcome.warning_message or ""
    commit = outcome.commit_id or ""
    if result == PrebuildResult.COMPLETED:
        snapshot = outcome.snapshot
        return status.prebuild_set_status(
            prebuild=prebuild,
            phase=PrebuildPhase.COMPLETED,
            warning_message=warning,
            commit_id=commit,
            snapshot_size_bytes=snapshot.size_bytes,
            snapshot_sha256=snapshot.sha256,
            snapshot_image=snapshot.image or "",
        )
    if result == PrebuildResult.CANCELLED:
        if prebuild.phase != PrebuildPhase.CANCELLING:
            prebuild = status.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.CANCELLING)
        prebuild = status.prebuild_set_status(
            prebuild=prebuild, phase=PrebuildPhase.CANCELLED, warning_message=warning, commit_id=commit
        )
        # A cancelled snapshot may be half-written (or whole, and in the registry already).
        if outcome.snapshot is not None and outcome.snapshot.image:
            snapshot_registry(prebuild.project.organization_id).delete("sha256:" + outcome.snapshot.sha256)
        snapshot_store().delete(str(prebuild.id))
        return prebuild
    return status.prebuild_set_status(
        prebuild=prebuild,
        phase=PrebuildPhase.FAILED,
        failure_message=outcome.failure_message or "failed",
        warning_message=warning,
        commit_id=commit,
    )


def _taken_from_this_worker(prebuild: Prebuild) -> None:
    log.warning(
        "prebuild %s was taken from this worker (%s)",
        prebuild.id,
        prebuild.get_phase_display(),
        extra={"prebuild_id": str(prebuild.id)},
    )


def delete(prebuild_id: str) -> None:
    """Remove a DELETING prebuild's snapshot, workspace and logs, then mark it DELETED."""
    prebuild = Prebuild.objects.filter(id=prebuild_id, phase=PrebuildPhase.DELETING).first()
    if prebuild is None:
        return
    delete_snapshot(prebuild)
    cleanup_workspace(workspace_path(prebuild.id))
    logstore.delete(prebuild)
    status.prebuild_deleted(prebuild=prebuild)
