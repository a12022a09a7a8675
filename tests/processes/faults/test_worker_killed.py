"""A worker is SIGKILLed while its prebuild runs: the reaper (beat + control worker, as deployed)
fails that prebuild "runner lost" within its bound, keeps the logs written up to the kill, and
prebuilds on another runner's worker go on unaffected."""

import time

import pytest

from prebuilds import logstore, services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from tests.processes.faults.conftest import HEARTBEAT_TIMEOUT_SECONDS, REAPER_INTERVAL_SECONDS, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

# prebuilds.execution writes the heartbeat at most every 5 s: the last one may be that old at the kill.
HEARTBEAT_WRITE_SECONDS = 5


def texts(prebuild) -> list[str]:
    return [line.text for line in logstore.read(prebuild, after=0, limit=5000).lines]


def phase(prebuild_id) -> Prebuild:
    return Prebuild.objects.get(id=prebuild_id)


def test_sigkill_of_a_worker_fails_its_prebuild_runner_lost_and_spares_the_other_runner(
    org, processes, make_runner, sample_repo
):
    runner_a, class_a = make_runner("a")
    runner_b, class_b = make_runner("b")
    slow, ok = sample_repo("slow"), sample_repo("ok")
    processes.beat()
    processes.worker("control", "control", wait=False)
    processes.worker("worker-a", runner_a.queue, concurrency=1, wait=False)
    processes.worker("worker-b", runner_b.queue, concurrency=1, wait=False)
    processes.ready("control", "worker-a", "worker-b")

    project = project_services.project_update(actor=org.admin, project=org.project, repository_url=str(slow))
    doomed = services.prebuild_create(actor=org.member, project=project, environment_class_id=class_a.id)
    wait_until(lambda: phase(doomed.id).phase == PrebuildPhase.RUNNING, 60, "the slow prebuild runs")
    wait_until(lambda: "tick 3" in texts(doomed), 30, "the slow prebuild logs tick 3")

    project = project_services.project_update(actor=org.admin, project=project, repository_url=str(ok))
    spared = services.prebuild_create(actor=org.member, project=project, environment_class_id=class_b.id)

    processes.kill("worker-a")  # the worker and its pool children, without a word (and no restart)
    killed_at = time.monotonic()

    bound = HEARTBEAT_TIMEOUT_SECONDS + HEARTBEAT_WRITE_SECONDS + REAPER_INTERVAL_SECONDS
    failed = wait_until(
        lambda: (p := phase(doomed.id)).phase in {PrebuildPhase.FAILED, PrebuildPhase.COMPLETED} and p,
        bound + 15,  # slack for a loaded machine; the figure is printed below
        "the killed worker's prebuild is failed by the reaper",
    )
    detected = time.monotonic() - killed_at
    print(f"runner lost detected and repaired {detected:.1f}s after the SIGKILL (bound {bound}s)")
    assert failed.phase == PrebuildPhase.FAILED
    assert failed.failure_message.startswith("runner lost"), failed.failure_message
    assert failed.completion_time is not None
    lines = texts(failed)
    assert "tick 3" in lines  # its logs up to the kill are kept

    done = wait_until(
        lambda: (p := phase(spared.id)).phase in {PrebuildPhase.FAILED, PrebuildPhase.COMPLETED} and p,
        120,
        "the other runner's prebuild finishes",
    )
    assert done.phase == PrebuildPhase.COMPLETED, done.failure_message
    assert done.failure_message == ""
