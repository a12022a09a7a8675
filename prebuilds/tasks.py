"""Prebuild tasks: thin, idempotent wrappers that take ids. The work lives in prebuilds/execution.py
(on a runner's queue) and prebuilds/maintenance.py (on the control queue)."""

import urllib.error

from celery import shared_task
from django.utils import timezone

from prebuilds import execution, maintenance
from projects import runner_bridge


@shared_task(acks_late=True, ignore_result=True)
def run_prebuild(prebuild_id: str) -> None:
    execution.execute(prebuild_id)


@shared_task(acks_late=True, ignore_result=True)
def delete_prebuild(prebuild_id: str) -> None:
    execution.delete(prebuild_id)


@shared_task(ignore_result=True, time_limit=120)
def reap() -> dict:
    return maintenance.reap(now=timezone.now())


@shared_task(ignore_result=True, time_limit=120)
def schedule_prebuilds() -> None:
    maintenance.schedule_prebuilds(now=timezone.now())


@shared_task(ignore_result=True, time_limit=600)
def expire_prebuilds() -> None:
    maintenance.expire_prebuilds(now=timezone.now())


@shared_task(ignore_result=True, time_limit=60)
def collect_registry_garbage() -> str:
    return runner_bridge.collect_registry_garbage()


@shared_task(
    ignore_result=True,
    autoretry_for=(urllib.error.URLError, OSError),
    retry_backoff=10,
    max_retries=5,
    time_limit=60,
)
def send_failure_webhook(prebuild_id: str) -> None:
    maintenance.send_failure_webhook(prebuild_id)
