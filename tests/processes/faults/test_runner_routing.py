"""Two runners, each with its own worker on its own "host" (a data directory of its own: workspaces
and snapshot store): a prebuild of each class runs only on its runner's worker."""

import pytest

from prebuilds import services
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase
from projects import services as project_services
from tests.processes.faults.conftest import json_lines, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

PER_CLASS = 4


def test_prebuilds_of_each_class_run_only_on_their_runners_worker(org, processes, make_runner, sample_repo, host_dir):
    runner_a, class_a = make_runner("a")
    runner_b, class_b = make_runner("b")
    host_a, host_b = host_dir("a"), host_dir("b")
    processes.worker("worker-a", runner_a.queue, wait=False, DATA_DIR=host_a)
    processes.worker("worker-b", runner_b.queue, wait=False, DATA_DIR=host_b)
    processes.ready("worker-a", "worker-b")

    project = project_services.project_update(
        actor=org.admin, project=org.project, repository_url=str(sample_repo("bare"))
    )
    made = {class_a.id: [], class_b.id: []}
    for _ in range(PER_CLASS):  # interleaved, so that both queues are busy at once
        for class_id in made:
            prebuild = services.prebuild_create(actor=org.member, project=project, environment_class_id=class_id)
            made[class_id].append(str(prebuild.id))
    everything = Prebuild.objects.filter(project=project, environment_class__in=[class_a, class_b])
    wait_until(
        lambda: all(phase in TERMINAL_PHASES for phase in everything.values_list("phase", flat=True)),
        120,
        "all prebuilds terminal",
    )
    assert set(everything.values_list("phase", flat=True)) == {PrebuildPhase.COMPLETED}

    for class_id, own, other, own_log, other_log in (
        (class_a.id, host_a, host_b, "worker-a", "worker-b"),
        (class_b.id, host_b, host_a, "worker-b", "worker-a"),
    ):
        ids = made[class_id]
        # Where it ran: the snapshot is written by the worker into its own host's store ...
        assert all((own / "snapshots" / f"{i}.tar.zst").is_file() for i in ids)
        assert not any((other / "snapshots" / f"{i}.tar.zst").exists() for i in ids)
        # ... and the worker's own log says it started it.
        started = {e.get("prebuild_id") for e in json_lines(processes.log(own_log)) if "started on" in e["message"]}
        elsewhere = {e.get("prebuild_id") for e in json_lines(processes.log(other_log)) if "started on" in e["message"]}
        assert set(ids) <= started
        assert not set(ids) & elsewhere
