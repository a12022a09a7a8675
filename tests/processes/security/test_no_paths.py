"""No answer of the REST API, the Connect API, the logs endpoint or the pages names a path of the
runner's disk. The runner's errors do name them (git, tar, the store and the OS say which file
they were about); what reaches a caller names the place instead (`<workspaces>/<id>`).

Each case is made the way it happens: a prebuild run by the real execution code whose runner
reports an error and log lines naming its workspace and the snapshot store, a warm pool that cannot
provision (its snapshot missing, its folder unusable), an environment whose build fails on the
disk, and a ready environment (whose workspace is a folder of the pools' volume)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils.html import escape

from prebuilds import execution
from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild, PrebuildPhase
from projects.services import api_token_create
from runner.executor import PrebuildOutcome, PrebuildResult
from warmpools import environments, reconciler
from warmpools import services as pool_services
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource, InstanceState, PoolInstance

CONNECT = "/gitpod.v1.PrebuildService/"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def host_paths() -> set[str]:
    """Every spelling of the runner's folders: as configured and resolved."""
    roots = [settings.DATA_DIR, settings.WORKSPACES_DIR, settings.SNAPSHOTS_DIR, settings.POOLS_DIR]
    return {str(root) for root in roots} | {os.path.realpath(root) for root in roots}


def assert_no_host_path(body: str, where: str) -> None:
    for path in host_paths():
        assert path not in body, f"{where} shows {path}"


class Reader:
    """What each interface shows a member of the organization."""

    def __init__(self, org):
        self.headers = {"Authorization": f"Bearer {api_token_create(user=org.admin, name='reader')[1]}"}
        self.browser = Client()
        self.browser.force_login(org.admin)

    def rest(self, path):
        response = Client().get(path, headers=self.headers)
        assert response.status_code == 200, (path, response.status_code)
        return response.content.decode()

    def connect(self, method, body):
        response = Client().post(
            CONNECT + method, data=json.dumps(body), content_type="application/json", headers=self.headers
        )
        assert response.status_code == 200, (method, response.content)
        return response.content.decode()

    def page(self, path, *, htmx=False):
        headers = {"HX-Request": "true"} if htmx else {}
        response = self.browser.get(path, headers=headers, follow=True)
        assert response.status_code in (200, 286), (path, response.status_code)
        return response.content.decode()


@pytest.fixture
def reader(org):
    return Reader(org)


def test_a_failed_prebuild_shows_no_runner_path(org, reader, monkeypatch):
    def run_prebuild(job, reporter):
        """The runner, failing as it does when tar or the store trips: naming its folders."""
        reporter.phase("STARTING")
        reporter.logs([("clone", "stderr", f"Cloning into '{job.workspace}'...")])
        reporter.phase("RUNNING")
        reporter.logs([("onCreateCommand", "stdout", f"building in {os.path.realpath(job.workspace)}/src")])
        return PrebuildOutcome(
            PrebuildResult.FAILED,
            f"cannot snapshot the workspace: tar: {job.workspace}/node_modules: Cannot open: Permission denied; "
            f"cannot write snapshot {job.snapshot_id} to {settings.SNAPSHOTS_DIR}: disk full",
            f"internal runner error: OSError: [Errno 2] No such file or directory: '{settings.DATA_DIR}/secret_key'",
        )

    monkeypatch.setattr(execution, "run_prebuild", run_prebuild)
    prebuild = prebuild_services.prebuild_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id
    )
    execution.execute(str(prebuild.id))
    prebuild = Prebuild.objects.get(id=prebuild.id)
    assert prebuild.phase == PrebuildPhase.FAILED
    # The message still says what happened, and where in words.
    assert "<workspaces>/" in prebuild.failure_message and "<snapshot store>" in prebuild.failure_message
    assert "node_modules: Cannot open: Permission denied" in prebuild.failure_message
    assert "<data dir>/secret_key" in prebuild.warning_message

    bodies = {
        "REST retrieve": reader.rest(f"/api/v1/prebuilds/{prebuild.id}/"),
        "REST list": reader.rest("/api/v1/prebuilds/"),
        "Connect GetPrebuild": reader.connect("GetPrebuild", {"prebuildId": str(prebuild.id)}),
        "Connect ListPrebuilds": reader.connect("ListPrebuilds", {}),
        "page detail": reader.page(f"/prebuilds/{prebuild.id}/"),
        "page list": reader.page("/prebuilds/"),
        "page overview": reader.page("/"),
        "page project": reader.page(f"/projects/{org.project.id}/"),
    }
    token = prebuild_services.prebuild_create_logs_token(actor=org.admin, prebuild=prebuild)
    logs = Client().get(f"/logs/{prebuild.id}", {"after": 0}, headers={"Authorization": f"Bearer {token}"})
    assert logs.status_code == 200
    bodies["logs"] = logs.content.decode()
    assert "Cloning into '<workspaces>/" in bodies["logs"]
    assert "Permission denied" in bodies["REST retrieve"] and "Permission denied" in bodies["page detail"]
    for where, body in bodies.items():
        assert_no_host_path(body, where)


@pytest.fixture
def completed_prebuild(org):
    """A completed prebuild whose snapshot is not in the store (deleted, or the volume lost)."""
    prebuild = prebuild_services.prebuild_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id
    )
    Prebuild.objects.filter(id=prebuild.id).update(
        phase=PrebuildPhase.COMPLETED, snapshot_sha256="0" * 64, snapshot_size_bytes=1000
    )
    return Prebuild.objects.get(id=prebuild.id)


def pool_bodies(reader, org, pool) -> dict[str, str]:
    return {
        "REST retrieve": reader.rest(f"/api/v1/warm-pools/{pool.id}/"),
        "REST list": reader.rest("/api/v1/warm-pools/"),
        "Connect GetWarmPool": reader.connect("GetWarmPool", {"warmPoolId": str(pool.id)}),
        "Connect ListWarmPools": reader.connect("ListWarmPools", {}),
        "page detail": reader.page(f"/warm-pools/{pool.id}/"),
        "page list": reader.page("/warm-pools/"),
        "page overview": reader.page("/"),
        "page project": reader.page(f"/projects/{org.project.id}/"),
    }


def test_a_degraded_pool_whose_snapshot_is_missing_shows_no_runner_path(org, reader, completed_prebuild):
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=1, max_size=1
    )
    pool = reconciler.reconcile(pool.id)
    assert pool.failure_message, "the pool should be degraded"
    assert "does not exist" in pool.failure_message
    for where, body in pool_bodies(reader, org, pool).items():
        assert_no_host_path(body, where)
        if where.startswith(("REST retrieve", "Connect Get", "page detail")):
            assert "does not exist" in body


def test_a_pool_whose_folder_is_unusable_shows_no_runner_path(org, reader, completed_prebuild, settings, tmp_path):
    # The pools' volume is not a directory (a mount gone wrong): the OS error names the path.
    blocker = Path(settings.DATA_DIR) / "pools-volume"
    blocker.write_text("not a directory")
    settings.POOLS_DIR = blocker
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=1, max_size=1
    )
    pool = reconciler.reconcile(pool.id)
    assert pool.failure_message
    assert "<warm pools>" in pool.failure_message or "<data dir>" in pool.failure_message, pool.failure_message
    for where, body in pool_bodies(reader, org, pool).items():
        assert_no_host_path(body, where)
        assert str(blocker) not in body


def test_environments_show_no_runner_path(org, reader, completed_prebuild, monkeypatch):
    pool = pool_services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, min_size=0, max_size=1
    )
    # A ready environment handed out from the pool: its workspace is a folder of the pools' volume.
    instance_path = settings.POOLS_DIR / str(pool.id) / "instance-1"
    instance = PoolInstance.objects.create(
        pool=pool, snapshot=completed_prebuild, state=InstanceState.CLAIMED, path=str(instance_path)
    )
    ready = Environment.objects.create(
        organization_id=pool.organization_id,
        project=org.project,
        environment_class=org.small,
        creator=org.admin,
        pool=pool,
        instance=instance,
        snapshot=completed_prebuild,
        source=EnvironmentSource.POOL,
        phase=EnvironmentPhase.READY,
        path=str(instance_path),
    )

    # One whose restore fails on the disk, with the OS naming the workspace.
    def start(store, snapshot_id, workspace, **kwargs):
        raise OSError(28, "No space left on device", str(workspace))

    monkeypatch.setattr(environments.runner_instances, "start", start)
    failing = Environment.objects.create(
        organization_id=pool.organization_id,
        project=org.project,
        environment_class=org.small,
        creator=org.admin,
        pool=pool,  # a pool miss: restored from the snapshot instead
        snapshot=completed_prebuild,
        source=EnvironmentSource.SNAPSHOT,
        phase=EnvironmentPhase.CREATING,
    )
    failed = environments.build(failing.id)
    assert failed.phase == EnvironmentPhase.FAILED
    assert "No space left on device" in failed.failure_message
    assert "<environments>/" in failed.failure_message

    bodies = {
        "REST ready": reader.rest(f"/api/v1/environments/{ready.id}/"),
        "REST failed": reader.rest(f"/api/v1/environments/{failed.id}/"),
        "REST list": reader.rest("/api/v1/environments/"),
        "page pool": reader.page(f"/warm-pools/{pool.id}/"),
        "page ready": reader.page(f"/warm-pools/{pool.id}/environments/{ready.id}"),
        "page ready (htmx)": reader.page(f"/warm-pools/{pool.id}/environments/{ready.id}", htmx=True),
        "page failed (htmx)": reader.page(f"/warm-pools/{pool.id}/environments/{failed.id}", htmx=True),
        "page environments (htmx)": reader.page(f"/warm-pools/{pool.id}/environments", htmx=True),
    }
    rest_ready = json.loads(bodies["REST ready"])
    assert rest_ready["path"] == f"<warm pools>/{pool.id}/instance-1"
    assert "No space left on device" in bodies["REST failed"]
    assert "No space left on device" in bodies["page failed (htmx)"]
    assert escape(f"<warm pools>/{pool.id}/instance-1") in bodies["page ready"]
    assert escape(f"<warm pools>/{pool.id}/instance-1") in bodies["page ready (htmx)"]
    for where, body in bodies.items():
        assert_no_host_path(body, where)
