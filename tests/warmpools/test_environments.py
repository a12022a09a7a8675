"""Environments keep spec and status apart, as prebuilds and pools do: a request writes what is asked
(desired_phase, spec_version), the runner side reports what is true (phase, status_version) through
warmpools/status.py, and each side's compare-and-swap makes a writer with a stale copy re-read and
decide again. Work is enqueued by task name, on the class's runner queue, once the request commits."""

from unittest import mock

import pytest
from celery import Celery
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase
from django.utils import timezone

from prebuilds.models import PrebuildPhase
from warmpools import dispatch, services, status, tasks
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource, InstanceState, PoolInstance

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent():
    """The task messages sent once the request's transaction commits: (name, args, queue)."""
    with mock.patch.object(Celery, "send_task", autospec=True) as send_task:
        messages = []
        send_task.side_effect = lambda app, name, args=None, queue=None, **kw: messages.append((name, args, queue))
        yield messages


def create(org, actor=None):
    return services.environment_create(actor=actor or org.member, project=org.project)


def fresh(environment):
    return Environment.objects.get(id=environment.id)


def test_a_new_environment_asks_for_ready_and_is_creating(org):
    environment = create(org)
    assert (environment.desired_phase, environment.spec_version) == (EnvironmentPhase.READY, 1)
    assert (environment.phase, environment.status_version) == (EnvironmentPhase.CREATING, 1)


def test_deleting_twice_writes_the_spec_once_and_enqueues_one_removal(org, sent):
    environment = create(org)
    with TestCase.captureOnCommitCallbacks(execute=True):
        deleted = services.environment_delete(actor=org.member, environment=environment)
    with TestCase.captureOnCommitCallbacks(execute=True):
        again = services.environment_delete(actor=org.member, environment=deleted)
    row = fresh(environment)
    assert (row.desired_phase, row.spec_version) == (EnvironmentPhase.DELETED, 2)
    assert (row.phase, row.status_version) == (EnvironmentPhase.DELETING, 2)
    assert (again.spec_version, again.status_version) == (2, 2)
    assert sent == [(dispatch.REMOVE_ENVIRONMENT, [str(environment.id)], org.runner.queue)]


def test_a_delete_from_a_stale_copy_sees_the_first_and_writes_nothing(org):
    environment = create(org)
    stale = fresh(environment)
    services.environment_delete(actor=org.member, environment=environment)
    services.environment_delete(actor=org.admin, environment=stale)  # spec_version 1 in hand; 2 in the row
    row = fresh(environment)
    assert (row.spec_version, row.status_version, row.phase) == (2, 2, EnvironmentPhase.DELETING)


def test_a_status_write_bumps_status_version_and_not_spec_version(org):
    environment = create(org)
    now = timezone.now()
    environment, changed = status.environment_ready(
        environment=environment, path="/data/environments/x", ready_at=now, ready_after_ms=12.5
    )
    assert changed
    row = fresh(environment)
    assert (row.phase, row.path, row.ready_at, row.ready_after_ms) == (
        EnvironmentPhase.READY,
        "/data/environments/x",
        now,
        12.5,
    )
    assert (row.status_version, row.spec_version, row.desired_phase) == (2, 1, EnvironmentPhase.READY)


def test_a_status_write_from_a_stale_copy_is_retried_on_the_current_row(org):
    """The request read CREATING (version 1); the runner made it READY (version 2) meanwhile. The
    request's DELETING is not lost and does not overwrite blindly: it re-reads, then moves READY on."""
    environment = create(org)
    stale = fresh(environment)
    status.environment_ready(environment=environment, path="/w", ready_at=timezone.now(), ready_after_ms=1.0)
    stale, changed = status.environment_deleting(environment=stale)
    assert changed and stale.status_version == 3
    row = fresh(environment)
    assert (row.phase, row.path, row.status_version) == (EnvironmentPhase.DELETING, "/w", 3)


def test_a_build_that_finishes_after_the_delete_loses(org):
    """The runner read CREATING before the delete: its READY (or FAILED) must not bring a deleted
    environment back."""
    environment = create(org)
    runner_copy = fresh(environment)
    services.environment_delete(actor=org.member, environment=environment)
    _, became_ready = status.environment_ready(
        environment=runner_copy, path="/w", ready_at=timezone.now(), ready_after_ms=1.0
    )
    _, failed = status.environment_failed(environment=runner_copy, message="boom")
    assert (became_ready, failed) == (False, False)
    row = fresh(environment)
    assert (row.phase, row.path, row.failure_message, row.status_version) == (EnvironmentPhase.DELETING, "", "", 2)


def test_removal_reports_deleted_and_frees_nothing_twice(org):
    environment = create(org)
    services.environment_delete(actor=org.member, environment=environment)
    tasks.remove_environment(str(environment.id))  # no workspace yet: nothing on disk to remove
    tasks.remove_environment(str(environment.id))
    row = fresh(environment)
    assert (row.phase, row.status_version, row.spec_version) == (EnvironmentPhase.DELETED, 3, 2)
    assert not Environment.objects.visible_to(org.member).filter(id=environment.id).exists()


def test_a_failed_build_message_names_places_not_paths(org, settings):
    environment = create(org)
    path = settings.DATA_DIR / "environments" / str(environment.id)
    status.environment_failed(environment=environment, message=f"No space left on device: '{path}'")
    row = fresh(environment)
    assert row.phase == EnvironmentPhase.FAILED
    assert str(settings.DATA_DIR) not in row.failure_message and "<environments>/" in row.failure_message


def test_a_pool_hit_is_ready_in_the_request_and_a_miss_is_built_on_the_runner(
    org, make_prebuild, make_pool, tmp_path, sent
):
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED)
    pool = make_pool(snapshot=snapshot, min_size=1, max_size=1)
    instance = PoolInstance.objects.create(
        pool=pool, snapshot=snapshot, state=InstanceState.RUNNING, path=str(tmp_path / "i1"), ready_at=timezone.now()
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        hit = create(org)
    assert (hit.source, hit.instance_id, hit.path) == (EnvironmentSource.POOL, instance.id, instance.path)
    row = fresh(hit)
    assert (row.phase, row.status_version, row.spec_version) == (EnvironmentPhase.READY, 2, 1)
    assert row.ready_after_ms is not None and row.ready_at is not None
    assert PoolInstance.objects.get(id=instance.id).state == InstanceState.CLAIMED
    assert sent == [(dispatch.RECONCILE_POOL, [str(pool.id)], org.runner.queue)]  # the backfill

    sent.clear()
    with TestCase.captureOnCommitCallbacks(execute=True):
        miss = create(org)
    assert (miss.source, fresh(miss).phase) == (EnvironmentSource.SNAPSHOT, EnvironmentPhase.CREATING)
    assert sent == [
        (dispatch.BUILD_ENVIRONMENT, [str(miss.id)], org.runner.queue),
        (dispatch.RECONCILE_POOL, [str(pool.id)], org.runner.queue),
    ]
    pool.refresh_from_db()
    assert (pool.hits, pool.misses) == (1, 1)


def test_dispatch_names_the_tasks_the_worker_registers():
    # Enqueued by name: a renamed task would leave every message unanswered.
    assert tasks.reconcile_pool.name == dispatch.RECONCILE_POOL
    assert tasks.build_environment.name == dispatch.BUILD_ENVIRONMENT
    assert tasks.remove_environment.name == dispatch.REMOVE_ENVIRONMENT


def test_nothing_is_enqueued_when_the_request_rolls_back(org, sent):
    """Sent on commit only: a worker must never get an id whose row does not exist."""
    with TestCase.captureOnCommitCallbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        create(org)
        raise RuntimeError("the request failed after asking")
    assert sent == [] and not Environment.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_environments_their_spec_and_versions(org):
    executor = MigrationExecutor(connection)
    executor.migrate([("warmpools", "0002_instances_and_environments")])
    old = executor.loader.project_state([("warmpools", "0002_instances_and_environments")]).apps
    OldEnvironment = old.get_model("warmpools", "Environment")  # noqa: N806
    ids = {}
    for phase in ("creating", "ready", "failed", "deleting", "deleted"):
        ids[phase] = OldEnvironment.objects.create(
            organization_id=org.organization.id,
            project_id=org.project.id,
            environment_class_id=org.small.id,
            source="cold",
            phase=phase,
        ).id
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    rows = {phase: Environment.objects.get(id=pk) for phase, pk in ids.items()}
    assert {p: (r.desired_phase, r.spec_version, r.status_version) for p, r in rows.items()} == {
        "creating": ("ready", 1, 1),
        "ready": ("ready", 1, 2),
        "failed": ("ready", 1, 2),
        "deleting": ("deleted", 2, 3),
        "deleted": ("deleted", 2, 4),
    }
    assert all(r.updated_at == r.created_at for r in rows.values())
