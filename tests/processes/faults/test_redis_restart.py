"""Redis (the broker) restarts, losing every message it held, while 50 prebuilds are being created
concurrently: every prebuild still reaches a terminal phase (the reaper re-sends PENDING ones whose
message was lost), none is lost and none runs twice."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection

from prebuilds import services
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase, PrebuildStep
from projects import services as project_services
from tests.processes.faults.conftest import json_lines, reaper_totals, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

CREATES = 50


def test_a_redis_restart_during_50_concurrent_creates_loses_no_prebuild_and_runs_none_twice(
    org, processes, make_runner, sample_repo, broker
):
    runner, environment_class = make_runner("redis")
    project = project_services.project_update(
        actor=org.admin, project=org.project, repository_url=str(sample_repo("bare"))
    )
    url = broker.url
    processes.beat(CELERY_BROKER_URL=url)
    processes.worker("control", "control", wait=False, CELERY_BROKER_URL=url)
    processes.worker("runner", runner.queue, concurrency=4, wait=False, CELERY_BROKER_URL=url)
    processes.ready("control", "runner")

    errors: list[str] = []
    start = threading.Barrier(CREATES + 1)

    def create(i: int) -> None:
        start.wait()
        time.sleep(i * 0.04)  # spread over two seconds, so that the restart falls among them
        try:
            services.prebuild_create(actor=org.member, project=project, environment_class_id=environment_class.id)
        except Exception as exc:  # the send after commit may fail while Redis is down: the row exists
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CREATES)]
    for thread in threads:
        thread.start()
    start.wait()
    time.sleep(0.8)
    broker.stop()  # every queued message is gone (no persistence), as in a crash
    restarted_at = time.monotonic()
    time.sleep(1.0)
    broker.start()
    for thread in threads:
        thread.join(timeout=120)

    created = Prebuild.objects.filter(project=project, environment_class=environment_class)
    print(f"{created.count()} prebuilds created; {len(errors)} creates reported a send error: {Counter(errors)}")
    assert created.count() == CREATES  # every create committed its row, whatever the broker did

    def all_terminal():
        phases = Counter(created.values_list("phase", flat=True))
        return all(phase in TERMINAL_PHASES for phase in phases) and phases

    phases = wait_until(all_terminal, 240, "all 50 prebuilds terminal", interval=1)
    repaired = time.monotonic() - restarted_at
    print(f"all {CREATES} terminal {repaired:.1f}s after the Redis restart: {dict(phases)}")
    print(f"the reaper's passes: {reaper_totals(processes.log('control'))}; restarted: {processes.restarts}")
    assert phases == {PrebuildPhase.COMPLETED: CREATES}, phases

    ids = {str(i) for i in created.values_list("id", flat=True)}
    # Run once: one clone step each, and one "started" line each in the worker's log (a second run
    # would write a second line; the step row alone would be overwritten, not duplicated).
    clones = Counter(str(i) for i in PrebuildStep.objects.filter(name="clone").values_list("prebuild_id", flat=True))
    assert {i: clones[i] for i in ids} == dict.fromkeys(ids, 1)
    started = Counter(
        entry["prebuild_id"]
        for entry in json_lines(processes.log("runner"))
        if entry.get("prebuild_id") in ids and " started on queue " in entry["message"]
    )
    assert started == Counter(dict.fromkeys(ids, 1))
    assert all(p.started_at and p.completion_time and p.started_at <= p.completion_time for p in created)
