"""Prebuild tasks: thin, idempotent wrappers that take ids. The work lives in prebuilds/execution.py."""

from celery import shared_task

from prebuilds import execution


@shared_task(acks_late=True, ignore_result=True)
def run_prebuild(prebuild_id: str) -> None:
    execution.execute(prebuild_id)


@shared_task(acks_late=True, ignore_result=True)
def delete_prebuild(prebuild_id: str) -> None:
    execution.delete(prebuild_id)
