"""Warm pools keep working on a podman runner (issue 14 makes their instances containers): a pool
of a container prebuild's snapshot holds workspaces copied out of the snapshot image, staged
instances are the image pulled onto the runner, and an environment from the pool gets the tree
the prebuild left. Prebuilds run in-process, through the same execution code a worker runs."""

from pathlib import Path

import pytest

from prebuilds import execution
from prebuilds import services as prebuild_services
from prebuilds.models import PrebuildPhase
from projects import services as project_services
from projects.models import Runner, RunnerBackend
from warmpools import reconciler, services
from warmpools.models import InstanceState, PoolInstance, WarmPoolPhase

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_a_pool_of_a_container_snapshot_holds_its_workspace(org, sample_repo, container_host, settings):
    Runner.objects.filter(pk=org.small.runner_id).update(backend=RunnerBackend.PODMAN)
    settings.CONTAINER_REGISTRY = container_host.registry.address
    settings.CONTAINER_REGISTRIES_CONF = container_host.podman.registries_conf
    repo = sample_repo("ok", "--files", "30")
    project = project_services.project_update(actor=org.admin, project=org.project, repository_url=str(repo))
    prebuild = prebuild_services.prebuild_create(actor=org.member, project=project)
    execution.execute(str(prebuild.id))
    prebuild.refresh_from_db()
    assert prebuild.phase == PrebuildPhase.COMPLETED, prebuild.failure_message
    assert prebuild.snapshot_image

    pool = services.warm_pool_create(
        actor=org.admin, project=project, environment_class_id=org.small.id, min_size=1, max_size=2
    )
    container_host.podman.run("rmi", "-f", prebuild.snapshot_image)  # the pool pulls it
    pool = reconciler.reconcile(pool.id)
    assert pool.phase == WarmPoolPhase.READY, pool.failure_message
    assert (pool.running_instances, pool.stopped_instances) == (1, 1)
    [instance] = PoolInstance.objects.filter(pool=pool, state=InstanceState.RUNNING)
    workspace = Path(instance.path)
    assert (workspace / ".prebuilt-at").is_file()  # made by updateContentCommand in the container
    assert len([p for p in (workspace / "deps").rglob("*") if p.is_file()]) == 30
