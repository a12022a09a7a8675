"""A DEGRADED pool in a person's words: what is wrong in one sentence, what to do about it, and
when the reconciler tries again. Read from what the reconciler recorded (its failure message and
next_attempt_at); the message itself stays available as the technical detail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from warmpools.models import WarmPool, WarmPoolPhase

# The reconciler's message: "cannot provision instances from prebuild <id>: <reason>; retrying in 5s".
_PREFIX = re.compile(r"^cannot provision instances from prebuild [0-9a-f-]{36}: ")
_RETRY = re.compile(r"; retrying in \d+s$")


@dataclass(frozen=True)
class Diagnosis:
    problem: str  # one sentence
    advice: str  # what to do
    action: str  # "trigger" (a new prebuild helps), "resize" (a smaller pool helps), or ""
    detail: str  # the runner's own words, for whoever wants them
    retry_at: datetime | None  # when the reconciler tries again (None: it is not waiting)


def diagnose(pool: WarmPool) -> Diagnosis | None:
    if pool.phase != WarmPoolPhase.DEGRADED or not pool.failure_message:
        return None
    detail = _RETRY.sub("", _PREFIX.sub("", pool.failure_message))
    text = detail.lower()
    pair = f"{pool.project.name} on {pool.environment_class.display_name}"
    if "checksum mismatch" in text or "corrupt" in text:
        problem = "The snapshot this pool warms is damaged: its contents no longer match its checksum."
        advice = f"Trigger a new prebuild of {pair}: the pool moves to it as soon as it completes."
        action = "trigger"
    elif "does not exist in the store" in text or "missing" in text:
        problem = "The snapshot this pool warms is missing from the snapshot store."
        advice = f"Trigger a new prebuild of {pair}: the pool moves to it as soon as it completes."
        action = "trigger"
    elif "disk is full" in text or "no space" in text or "full" in text:
        problem = "The runner's disk is full, so no new instance fits on it."
        advice = "Free space on the runner, or lower this pool's maximum (staged instances take space too)."
        action = "resize"
    else:
        problem = "The runner could not start instances of this pool."
        advice = "The details below say why; the pool tries again by itself."
        action = ""
    return Diagnosis(problem, advice, action, detail, pool.next_attempt_at)
