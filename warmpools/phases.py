"""The warm pool and environment phase machines: every allowed status transition, in one place."""

from core.errors import FailedPrecondition
from warmpools.models import EnvironmentPhase as E
from warmpools.models import WarmPoolPhase as P

ALLOWED_TRANSITIONS: dict[int, frozenset[int]] = {
    P.PENDING: frozenset({P.READY, P.DEGRADED, P.DELETING}),
    P.READY: frozenset({P.PENDING, P.DEGRADED, P.DELETING}),
    P.DEGRADED: frozenset({P.PENDING, P.READY, P.DELETING}),
    P.DELETING: frozenset({P.DELETED}),
    P.DELETED: frozenset(),
}

# An environment is built (or handed out) once, then deleted: nothing goes back.
ENVIRONMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    E.CREATING: frozenset({E.READY, E.FAILED, E.DELETING}),
    E.READY: frozenset({E.DELETING}),
    E.FAILED: frozenset({E.DELETING}),
    E.DELETING: frozenset({E.DELETED}),
    E.DELETED: frozenset(),
}


def can_transition(current: int, new: int) -> bool:
    return new == current or new in ALLOWED_TRANSITIONS.get(current, frozenset())


def check_transition(current: int, new: int) -> None:
    if not can_transition(current, new):
        raise FailedPrecondition(
            f"a warm pool cannot move from {P(current).label} to {P(new).label}", field="status.phase"
        )


def can_environment_transition(current: str, new: str) -> bool:
    return new in ENVIRONMENT_TRANSITIONS.get(current, frozenset())
