"""Local prebuild runner: plain Python, no Django.

The Django side calls executor.run_prebuild() from a Celery task with a Reporter that
writes to the database; the other modules are usable on their own.
"""

from .checkout import clone
from .devcontainer import DevcontainerConfig, find_devcontainer, load_devcontainer, parse_devcontainer
from .errors import (
    CheckoutError,
    DevcontainerError,
    LifecycleFailed,
    RunnerError,
    SandboxError,
    SandboxUnavailable,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotMissing,
    Stopped,
    StoreError,
    StoreFull,
)
from .executor import NullReporter, PrebuildJob, PrebuildOutcome, Reporter, cleanup_workspace, run_prebuild
from .lifecycle import StepEvent, run_lifecycle
from .sandbox import CommandResult, SandboxLimits, run_sandboxed
from .snapshot import RestoreInfo, SnapshotInfo, create_snapshot, restore_snapshot
from .store import LocalSnapshotStore, SnapshotStore, SnapshotWriter

__all__ = [
    "CheckoutError",
    "CommandResult",
    "DevcontainerConfig",
    "DevcontainerError",
    "LifecycleFailed",
    "LocalSnapshotStore",
    "NullReporter",
    "PrebuildJob",
    "PrebuildOutcome",
    "Reporter",
    "RestoreInfo",
    "RunnerError",
    "SandboxError",
    "SandboxLimits",
    "SandboxUnavailable",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotMissing",
    "SnapshotStore",
    "SnapshotWriter",
    "StepEvent",
    "Stopped",
    "StoreError",
    "StoreFull",
    "cleanup_workspace",
    "clone",
    "create_snapshot",
    "find_devcontainer",
    "load_devcontainer",
    "parse_devcontainer",
    "restore_snapshot",
    "run_lifecycle",
    "run_prebuild",
    "run_sandboxed",
]
