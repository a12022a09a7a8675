"""Task dispatch for warm pools and environments: enqueue by name, after the current transaction
commits (a worker must see the rows that asked for the work).

By name, so that the modules which ask for work (services, status) never import warmpools.tasks,
which imports the reconciler and the environment builder, which import them: no import circle. The
worker knows the tasks by these names and applies their own options (acks_late, time limits).
Reconciles and environment builds go to the runner's queue, because they touch the runner's disk.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

RECONCILE_POOL = "warmpools.tasks.reconcile_pool"
BUILD_ENVIRONMENT = "warmpools.tasks.build_environment"
REMOVE_ENVIRONMENT = "warmpools.tasks.remove_environment"
FINISH_ENVIRONMENT = "warmpools.tasks.finish_environment"


def _send_on_commit(name: str, object_id, queue: str | None) -> None:
    args = [str(object_id)]
    transaction.on_commit(lambda: current_app.send_task(name, args=args, queue=queue))


def reconcile_pool(pool) -> None:
    """Run the pool's reconciler on its runner once the current transaction commits."""
    _send_on_commit(RECONCILE_POOL, pool.id, pool.runner.queue if pool.runner_id else None)


def build_environment(environment) -> None:
    """Restore or build the environment's workspace on its class's runner."""
    _send_on_commit(BUILD_ENVIRONMENT, environment.id, environment.environment_class.runner.queue)


def finish_environment(environment) -> None:
    """Run the rest of the devcontainer lifecycle (postCreateCommand, postStartCommand) in the
    environment's container on its class's runner."""
    _send_on_commit(FINISH_ENVIRONMENT, environment.id, environment.environment_class.runner.queue)


def remove_environment(environment) -> None:
    """Remove the environment's workspace from its class's runner."""
    _send_on_commit(REMOVE_ENVIRONMENT, environment.id, environment.environment_class.runner.queue)
