"""Environments on the runner: restore a snapshot into a fresh workspace or build one cold, and
remove a deleted environment's workspace. What happened is reported through warmpools/status.py.

Asking for an environment (and handing out a warm pool instance, a hit, in the request) is
warmpools/services.py's environment_create; this is the work a miss leaves for the class's runner.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.utils import timezone

from projects.runner_bridge import (
    create_environment_container,
    ensure_traversable,
    organization_container_backend,
    remove_instance_container,
    sandbox_options,
    start_instance,
    uses_environment_container,
)
from runner import instances as runner_instances
from runner.errors import RunnerError
from warmpools import status
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource


def environments_dir() -> Path:
    return settings.DATA_DIR / "environments"


def build(environment_id) -> Environment | None:
    """On the runner: restore the snapshot into a fresh workspace, or build it cold."""
    environment = (
        Environment.objects.select_related("project", "environment_class__runner", "snapshot")
        .filter(id=environment_id, phase=EnvironmentPhase.CREATING)
        .first()
    )
    if environment is None:
        return None
    if environment.source == EnvironmentSource.SNAPSHOT and uses_environment_container(environment):
        return _build_container(environment)
    workspace = environments_dir() / str(environment.id)
    ensure_traversable(environments_dir())
    try:
        if environment.source == EnvironmentSource.SNAPSHOT:
            start_instance(environment.snapshot, workspace)
        else:
            project = environment.project
            runner_instances.build_cold(
                project.repository_url,
                project.branch,
                workspace,
                access_token=project.access_token or None,
                devcontainer_path=project.devcontainer_path,
                timeout_seconds=project.prebuild_timeout.total_seconds(),
                **sandbox_options(environment.environment_class).arguments(),
            )
    except (RunnerError, OSError) as exc:
        status.environment_failed(environment=environment, message=str(exc))
        return Environment.objects.get(id=environment.id)
    now = timezone.now()
    _, became_ready = status.environment_ready(
        environment=environment,
        path=str(workspace),
        ready_at=now,
        ready_after_ms=(now - environment.created_at).total_seconds() * 1000,
    )
    if not became_ready:  # deleted while it was being built: nobody will ever use this workspace
        runner_instances.remove(workspace)
    return Environment.objects.get(id=environment.id)


def _build_container(environment: Environment) -> Environment:
    """A miss on the container backend: a container started from the snapshot image (as a pool's
    running instance is), then the rest of the lifecycle in it, as after a hit."""
    try:
        provisioned = create_environment_container(environment, environments_dir() / f"guard-{environment.id}")
    except (RunnerError, OSError) as exc:
        status.environment_failed(environment=environment, message=str(exc))
        return Environment.objects.get(id=environment.id)
    name = str(provisioned.path)
    now = timezone.now()
    _, became_ready = status.environment_ready(
        environment=environment,
        path="",
        ready_at=now,
        ready_after_ms=(now - environment.created_at).total_seconds() * 1000,
        container_name=name,
        image=environment.snapshot.snapshot_image,
    )
    if not became_ready:  # deleted meanwhile: nobody will use this container
        remove_instance_container(environment.organization_id, name)
        return Environment.objects.get(id=environment.id)
    return finish(environment.id)


def finish(environment_id) -> Environment | None:
    """On the runner: postCreateCommand then postStartCommand in a ready environment's container,
    as its remoteUser in its workspace folder; their output goes to the environment's log, a failure
    to its failure message (the environment stays usable, as the devcontainer tools leave it)."""
    environment = (
        Environment.objects.select_related("project")
        .filter(id=environment_id, phase=EnvironmentPhase.READY, lifecycle_done_at__isnull=True)
        .exclude(container_name="")
        .first()
    )
    if environment is None:
        return None
    backend = organization_container_backend(environment.organization_id)
    try:
        where = runner_instances.read_environment(
            backend, environment.container_name, environment.image, environment.project.devcontainer_path or None
        )
        status.environment_entered(
            environment=environment, remote_user=where.remote_user, workspace_folder=where.workspace_folder
        )

        def on_output(step, result):
            text = result.stdout + result.stderr
            status.environment_log(environment=environment, step=step, text=text or f"(exit code {result.exit_code})")

        failure = runner_instances.run_claim_hooks(
            backend,
            environment.container_name,
            where,
            timeout=environment.project.prebuild_timeout.total_seconds(),
            on_output=on_output,
        )
    except (RunnerError, OSError) as exc:
        failure = str(exc)
    if failure:
        status.environment_log(environment=environment, step="lifecycle", text=failure)
    status.environment_lifecycle_done(environment=environment, at=timezone.now())
    return Environment.objects.get(id=environment.id)


def remove(environment_id) -> None:
    """On the runner: remove a deleted environment's workspace, then report it DELETED."""
    environment = Environment.objects.filter(id=environment_id, phase=EnvironmentPhase.DELETING).first()
    if environment is None:
        return
    if environment.container_name:
        # The container and its writable layer: what was done in the environment goes with it.
        remove_instance_container(environment.organization_id, environment.container_name)
        runner_instances.remove(environments_dir() / f"guard-{environment.id}")  # a networked miss's hook
    if environment.path:
        runner_instances.remove(Path(environment.path))
    if environment.instance_id:
        status.instance_released(environment.instance_id)
    status.environment_deleted(environment=environment)
