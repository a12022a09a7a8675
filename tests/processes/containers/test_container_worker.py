"""A prebuild on a runner whose backend is podman, end to end: triggered through the service layer,
run by a real Celery worker process, its snapshot an image in the organization's repository of a
real registry, deleted with the prebuild."""

from __future__ import annotations

import time

import pytest

from prebuilds import logstore, services
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services
from projects.models import Runner, RunnerBackend
from projects.runner_bridge import snapshot_registry

pytestmark = pytest.mark.slow
QUEUES = "control,runner-test"


def wait_for(prebuild_id, phases, seconds=180) -> Prebuild:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        prebuild = Prebuild.objects.get(id=prebuild_id)
        if prebuild.phase in phases:
            return prebuild
        time.sleep(0.2)
    raise AssertionError(f"prebuild stayed {prebuild.get_phase_display()}: {prebuild.failure_message}")


@pytest.fixture
def podman_runner(org, container_host, settings):
    """The org's runner on the container backend, pointed at the test registry (the worker gets the
    same settings through its environment)."""
    Runner.objects.filter(pk=org.small.runner_id).update(backend=RunnerBackend.PODMAN)
    settings.CONTAINER_REGISTRY = container_host.registry.address
    settings.CONTAINER_REGISTRIES_CONF = container_host.podman.registries_conf
    return {
        "CONTAINER_REGISTRY": container_host.registry.address,
        "CONTAINER_REGISTRIES_CONF": str(container_host.podman.registries_conf),
    }


def test_a_podman_runner_prebuilds_in_a_container_and_deleting_the_prebuild_deletes_its_image(
    org, start_worker, sample_repo, podman_runner, container_host
):
    start_worker(QUEUES, **podman_runner)
    container_host.forget_sample_image()
    project = project_services.project_update(
        actor=org.admin, project=org.project, repository_url=str(sample_repo("ok"))
    )
    prebuild = services.prebuild_create(actor=org.member, project=project, environment_class_id=str(org.small.id))
    prebuild = wait_for(prebuild.id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message

    registry = snapshot_registry(org.organization.id)
    assert prebuild.snapshot_image == registry.pinned("sha256:" + prebuild.snapshot_sha256)
    assert registry.manifest("sha256:" + prebuild.snapshot_sha256) is not None
    assert prebuild.snapshot_size_bytes > 0
    names = list(prebuild.steps.order_by("position").values_list("name", flat=True))
    assert names == ["clone", "image", "container", "onCreateCommand", "updateContentCommand", "snapshot"]
    lines = logstore.read(prebuild, after=0, limit=5000).lines
    assert any(line.step == "onCreateCommand" and "dependency tree ready" in line.text for line in lines)

    services.prebuild_delete(actor=org.admin, prebuild=prebuild)
    wait_for(prebuild.id, {PrebuildPhase.DELETED})
    assert registry.manifest("sha256:" + prebuild.snapshot_sha256) is None


def test_a_podman_runner_without_podman_fails_the_prebuild_with_a_message(org, start_worker, sample_repo):
    # (No container host needed: this is what a runner host without podman does.)
    Runner.objects.filter(pk=org.small.runner_id).update(backend=RunnerBackend.PODMAN)
    start_worker(QUEUES, PATH="/nonexistent")
    project = project_services.project_update(
        actor=org.admin, project=org.project, repository_url=str(sample_repo("ok"))
    )
    prebuild = services.prebuild_create(actor=org.member, project=project, environment_class_id=str(org.small.id))
    prebuild = wait_for(prebuild.id, {PrebuildPhase.COMPLETED, PrebuildPhase.FAILED})
    assert prebuild.phase == PrebuildPhase.FAILED
    assert prebuild.failure_message == (
        "this runner uses the container backend: podman (podman) is not installed on this runner"
    )
