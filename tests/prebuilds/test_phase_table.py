"""The prebuild phase machine, checked against a table written out by hand here (not read from
prebuilds/phases.py): a transition added to or dropped from the module's table by mistake shows up
as a difference. Each pair is tried through the runner side's status write, on a stored prebuild,
because that is where an illegal move must be refused."""

import pytest

from core.errors import FailedPrecondition
from prebuilds import phases, services
from prebuilds import status as prebuild_status
from prebuilds.models import Prebuild, PrebuildPhase

pytestmark = pytest.mark.django_db

PENDING, STARTING, RUNNING = "PENDING", "STARTING", "RUNNING"
STOPPING, SNAPSHOTTING, COMPLETED = "STOPPING", "SNAPSHOTTING", "COMPLETED"
FAILED, CANCELLING, CANCELLED = "FAILED", "CANCELLING", "CANCELLED"
DELETING, DELETED = "DELETING", "DELETED"

# Every allowed move, and nothing else. A finished prebuild (completed, failed, cancelled) can only
# be deleted; a deleted one goes nowhere.
EXPECTED = {
    PENDING: {STARTING, CANCELLED, FAILED, DELETING},
    STARTING: {RUNNING, STOPPING, FAILED, CANCELLING, DELETING},
    RUNNING: {STOPPING, FAILED, CANCELLING, DELETING},
    STOPPING: {SNAPSHOTTING, FAILED, CANCELLING, DELETING},
    SNAPSHOTTING: {COMPLETED, FAILED, CANCELLING, DELETING},
    CANCELLING: {CANCELLED, FAILED, DELETING},
    COMPLETED: {DELETING},
    FAILED: {DELETING},
    CANCELLED: {DELETING},
    DELETING: {DELETED},
    DELETED: set(),
}
PHASES = [PrebuildPhase[name] for name in EXPECTED]


def test_the_table_names_every_phase():
    assert {p.name for p in PrebuildPhase if p != PrebuildPhase.UNSPECIFIED} == set(EXPECTED)


def test_the_status_write_allows_exactly_the_expected_moves(org):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    wrong = []
    for current in PHASES:
        for new in PHASES:
            if new == current:
                continue
            Prebuild.objects.filter(id=prebuild.id).update(phase=current, status_version=1)
            row = Prebuild.objects.get(id=prebuild.id)
            try:
                prebuild_status.prebuild_set_status(prebuild=row, phase=new)
                allowed = True
            except FailedPrecondition:
                allowed = False
            row = Prebuild.objects.get(id=prebuild.id)
            expected = new.name in EXPECTED[current.name]
            stored = (row.phase, row.status_version)
            if allowed != expected or stored != ((new, 2) if expected else (current, 1)):
                wrong.append(f"{current.name} -> {new.name}: allowed={allowed}, expected={expected}")
    assert wrong == []


def test_the_phase_module_answers_the_same():
    # What pages and workers ask before they try (can_transition) agrees with the table too.
    got = {
        current.name: {new.name for new in PHASES if new != current and phases.can_transition(current, new)}
        for current in PHASES
    }
    assert got == EXPECTED


def test_a_completed_prebuild_cannot_run_again(org):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    Prebuild.objects.filter(id=prebuild.id).update(phase=PrebuildPhase.COMPLETED)
    prebuild.refresh_from_db()
    with pytest.raises(FailedPrecondition, match="cannot move from Completed to Running"):
        prebuild_status.prebuild_set_status(prebuild=prebuild, phase=PrebuildPhase.RUNNING)
    assert Prebuild.objects.get(id=prebuild.id).phase == PrebuildPhase.COMPLETED
