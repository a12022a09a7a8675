"""Exceptions raised by the runner.

Every message is meant to be shown to a person as is: it names the file, command or
resource involved and never contains a traceback or a secret.
"""

from __future__ import annotations

from enum import StrEnum


class StopReason(StrEnum):
    """Why work was stopped before it finished, when it is not a budget's message (a watcher's
    "stopped: the workspace used ..."). String values: they are what the steps and messages show,
    and what the reasons were before they had names."""

    TIMEOUT = "timeout"  # the job's deadline passed (the runner's own reason)
    CANCELLED = "cancelled"  # someone asked for it (a Reporter's should_stop)
    # The reporter's side lost the prebuild to someone else (the control plane's reaper failed it
    # meanwhile): whatever the run reports next is not written.
    RUNNER_LOST = "runner lost"


class RunnerError(Exception):
    """Base class of every error the runner raises on purpose."""


class DevcontainerError(RunnerError):
    """devcontainer.json is unreadable, not valid JSONC, or has a badly shaped field."""


class ArgumentRefused(RunnerError):
    """A container engine command line was refused by the container policy: argument names the
    offending argument (as written, with its value when it has one)."""

    def __init__(self, message: str, *, argument: str):
        super().__init__(message)
        self.argument = argument


class CheckoutError(RunnerError):
    """git clone failed."""


class SandboxError(RunnerError):
    """A command could not be started or supervised in the sandbox."""


class SandboxUnavailable(SandboxError):
    """bubblewrap is not installed and unsandboxed runs were not allowed."""


class LifecycleFailed(RunnerError):
    """A lifecycle command exited with a non-zero status."""

    def __init__(self, message: str, *, step: str, exit_status: int | None):
        super().__init__(message)
        self.step = step
        self.exit_status = exit_status


class Stopped(RunnerError):
    """Work was stopped before it finished: reason is a StopReason (TIMEOUT from the deadline) or
    what should_stop returned."""

    def __init__(self, reason: str):
        super().__init__(f"stopped: {reason}")
        self.reason = reason


class StoreError(RunnerError):
    """The snapshot store failed."""


class StoreFull(StoreError):
    """The snapshot store ran out of space (ENOSPC / EDQUOT)."""


class SnapshotError(RunnerError):
    """A snapshot could not be created or restored."""


class SnapshotMissing(SnapshotError):
    """The store holds no snapshot with that id."""


class SnapshotCorrupt(SnapshotError):
    """The stored snapshot does not match its checksum or cannot be decoded."""
