"""The warm pool phase machine: every allowed status transition, in one place."""

from core.errors import FailedPrecondition
from warmpools.models import WarmPoolPhase as P

ALLOWED_TRANSITIONS: dict[int, frozenset[int]] = {
    P.PENDING: frozenset({P.READY, P.DEGRADED, P.DELETING}),
    P.READY: frozenset({P.PENDING, P.DEGRADED, P.DELETING}),
    P.DEGRADED: frozenset({P.PENDING, P.READY, P.DELETING}),
    P.DELETING: frozenset({P.DELETED}),
    P.DELETED: frozenset(),
}


def can_transition(current: int, new: int) -> bool:
    return new == current or new in ALLOWED_TRANSITIONS.get(current, frozenset())


def check_transition(current: int, new: int) -> None:
    if not can_transition(current, new):
        raise FailedPrecondition(
            f"a warm pool cannot move from {P(current).label} to {P(new).label}", field="status.phase"
        )
