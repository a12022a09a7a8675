"""Warm pool tasks: thin wrappers that take ids. Reconciles and environment builds run on the
pool's runner queue (they touch the runner's disk); the periodic fan-out runs on the control queue."""

from celery import shared_task
from django.utils import timezone

from warmpools import environments, reconciler
from warmpools.models import WarmPool


@shared_task(acks_late=True, ignore_result=True, time_limit=1800)
def reconcile_pool(pool_id: str) -> None:
    reconciler.reconcile(pool_id, now=timezone.now())


@shared_task(ignore_result=True, time_limit=120)
def reconcile_all() -> None:
    """The periodic fan-out: each runner with pools checks its own (they live on its disk)."""
    runners = WarmPool.objects.not_deleted().values_list("runner_id", "runner__queue").distinct()
    for runner_id, queue in runners:
        reconcile_runner.apply_async(args=[str(runner_id)], queue=queue)


@shared_task(acks_late=True, ignore_result=True, time_limit=1800)
def reconcile_runner(runner_id: str) -> int:
    return reconciler.reconcile_pass(runner_id, now=timezone.now())


@shared_task(acks_late=True, ignore_result=True, time_limit=3 * 3600)
def build_environment(environment_id: str) -> None:
    environments.build(environment_id)


@shared_task(acks_late=True, ignore_result=True, time_limit=3600)
def finish_environment(environment_id: str) -> None:
    environments.finish(environment_id)


@shared_task(acks_late=True, ignore_result=True, time_limit=600)
def remove_environment(environment_id: str) -> None:
    environments.remove(environment_id)
