"""The warm pool phase machine, checked against a table written out by hand here (not read from
warmpools/phases.py), through the reconciler's status write on a stored pool."""

import pytest

from core.errors import FailedPrecondition
from warmpools import phases, services
from warmpools import status as pool_status
from warmpools.models import WarmPool, WarmPoolPhase

pytestmark = pytest.mark.django_db

PENDING, READY, DEGRADED, DELETING, DELETED = "PENDING", "READY", "DEGRADED", "DELETING", "DELETED"

# Every allowed move between different phases, and nothing else. A pool being deleted only
# finishes its deletion; a deleted pool goes nowhere.
EXPECTED = {
    PENDING: {READY, DEGRADED, DELETING},
    READY: {PENDING, DEGRADED, DELETING},
    DEGRADED: {PENDING, READY, DELETING},
    DELETING: {DELETED},
    DELETED: set(),
}
PHASES = [WarmPoolPhase[name] for name in EXPECTED]


def test_the_table_names_every_phase():
    assert {p.name for p in WarmPoolPhase if p != WarmPoolPhase.UNSPECIFIED} == set(EXPECTED)


def test_the_status_write_allows_exactly_the_expected_moves(org):
    pool = services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, max_size=1
    )
    wrong = []
    for current in PHASES:
        for new in PHASES:
            WarmPool.objects.filter(id=pool.id).update(phase=current, status_version=1)
            row = WarmPool.objects.get(id=pool.id)
            try:
                pool_status.warm_pool_set_status(pool=row, phase=new)
                allowed = True
            except FailedPrecondition:
                allowed = False
            row = WarmPool.objects.get(id=pool.id)
            # Staying in the same phase is always allowed (and writes nothing).
            expected = new == current or new.name in EXPECTED[current.name]
            stored = (row.phase, row.status_version)
            # A refused move and a move to the same phase write nothing; an allowed one writes once.
            wanted = (new, 2) if expected and new != current else (current, 1)
            if allowed != expected or stored != wanted:
                wrong.append(f"{current.name} -> {new.name}: allowed={allowed}, expected={expected}, stored={stored}")
    assert wrong == []


def test_the_phase_module_answers_the_same():
    got = {
        current.name: {new.name for new in PHASES if new != current and phases.can_transition(current, new)}
        for current in PHASES
    }
    assert got == EXPECTED
