"""Warm pool tasks: thin wrappers that take ids and call the reconciler."""

from celery import shared_task

from warmpools import reconciler


@shared_task(acks_late=True, ignore_result=True)
def reconcile_pool(pool_id: str) -> None:
    reconciler.reconcile(pool_id)
