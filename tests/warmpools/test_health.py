"""A DEGRADED pool in a person's words (warmpools.health): the problem in one sentence, what to do,
and when it retries; from the reconciler's own messages."""

from datetime import timedelta

import pytest
from django.utils import timezone

from warmpools.health import diagnose
from warmpools.models import WarmPoolPhase

pytestmark = pytest.mark.django_db

ID = "0b6c8f8e-5f3b-4cf3-9d0e-3c8a7f1f2a10"


def degraded(make_pool, reason, **fields):
    pool = make_pool()
    pool.phase = WarmPoolPhase.DEGRADED
    pool.failure_message = f"cannot provision instances from prebuild {ID}: {reason}; retrying in 5s"
    for name, value in fields.items():
        setattr(pool, name, value)
    return pool


@pytest.mark.parametrize(
    ("reason", "problem", "action"),
    [
        (
            f"snapshot {ID} is corrupt: checksum mismatch (expected {'a' * 64}, got {'b' * 64})",
            "The snapshot this pool warms is damaged: its contents no longer match its checksum.",
            "trigger",
        ),
        (f"snapshot {ID} does not exist in the store", "The snapshot this pool warms is missing", "trigger"),
        (
            f"the runner's disk is full while restoring snapshot {ID} (1.2 MB free)",
            "The runner's disk is full, so no new instance fits on it.",
            "resize",
        ),
        ("tar: something odd", "The runner could not start instances of this pool.", ""),
    ],
)
def test_each_known_failure_is_a_sentence_and_a_next_step(make_pool, reason, problem, action):
    retry = timezone.now() + timedelta(seconds=5)
    diagnosis = diagnose(degraded(make_pool, reason, next_attempt_at=retry))
    assert diagnosis.problem.startswith(problem)
    assert diagnosis.action == action and diagnosis.retry_at == retry
    # No id or checksum in the sentence; the runner's words, without the retry note, stay available.
    assert ID not in diagnosis.problem + diagnosis.advice and "a" * 64 not in diagnosis.problem
    assert diagnosis.detail == reason
    if action == "trigger":
        assert (
            diagnosis.advice == "Trigger a new prebuild of app on small: the pool moves to it as soon as it completes."
        )


def test_a_healthy_pool_has_nothing_to_say(make_pool):
    pool = make_pool()
    assert diagnose(pool) is None
    pool.phase, pool.failure_message = WarmPoolPhase.READY, ""
    assert diagnose(pool) is None
