"""The prebuild phase machine: every allowed status transition, in one place."""

from core.errors import FailedPrecondition
from prebuilds.models import PrebuildPhase as P

ALLOWED_TRANSITIONS: dict[int, frozenset[int]] = {
    # A pending prebuild is claimed by a worker, cancelled or deleted before it starts, or failed
    # by the reaper or the scheduler when it cannot start at all.
    P.PENDING: frozenset({P.STARTING, P.CANCELLED, P.FAILED, P.DELETING}),
    P.STARTING: frozenset({P.RUNNING, P.STOPPING, P.FAILED, P.CANCELLING, P.DELETING}),
    P.RUNNING: frozenset({P.STOPPING, P.FAILED, P.CANCELLING, P.DELETING}),
    P.STOPPING: frozenset({P.SNAPSHOTTING, P.FAILED, P.CANCELLING, P.DELETING}),
    P.SNAPSHOTTING: frozenset({P.COMPLETED, P.FAILED, P.CANCELLING, P.DELETING}),
    P.CANCELLING: frozenset({P.CANCELLED, P.FAILED, P.DELETING}),
    P.COMPLETED: frozenset({P.DELETING}),
    P.FAILED: frozenset({P.DELETING}),
    P.CANCELLED: frozenset({P.DELETING}),
    P.DELETING: frozenset({P.DELETED}),
    P.DELETED: frozenset(),
}


def can_transition(current: int, new: int) -> bool:
    return new in ALLOWED_TRANSITIONS.get(current, frozenset())


def check_transition(current: int, new: int) -> None:
    if not can_transition(current, new):
        raise FailedPrecondition(
            f"a prebuild cannot move from {P(current).label} to {P(new).label}", field="status.phase"
        )
