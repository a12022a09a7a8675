"""Task dispatch: the prebuild tasks, sent by name once the transaction commits.

Sending by name (Celery's send_task) needs no import of prebuilds.tasks, which imports the
execution and the maintenance passes, which write through the services and status: services and
status send work without closing that circle. The names are the tasks' registered names
(prebuilds/tasks.py, `shared_task` names them after their module and function);
tests/prebuilds/test_dispatch.py reads the sent messages back and checks each name against the
registry. The options are the tasks' own (all ignore their results); a worker applies each task's
time limits from its registry.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction

from prebuilds.models import Prebuild
from projects.models import EnvironmentClass

RUN_PREBUILD = "prebuilds.tasks.run_prebuild"
DELETE_PREBUILD = "prebuilds.tasks.delete_prebuild"
SEND_FAILURE_WEBHOOK = "prebuilds.tasks.send_failure_webhook"


def _send_on_commit(name: str, prebuild_id, *, queue: str | None = None, robust: bool = True) -> None:
    args = [str(prebuild_id)]
    options = {"queue": queue} if queue else {}  # none: Celery's default queue ("control")
    transaction.on_commit(lambda: current_app.send_task(name, args=args, ignore_result=True, **options), robust=robust)


def run_prebuild(prebuild: Prebuild) -> None:
    """Send the prebuild to its runner's queue after commit (a worker must see the row).

    robust: the prebuild is committed whatever happens to the broker; if the message cannot be
    sent now, the reaper sends it later, and the caller still gets its prebuild."""
    _send_on_commit(RUN_PREBUILD, prebuild.id, queue=prebuild.environment_class.runner.queue)


def delete_prebuild(prebuild: Prebuild) -> None:
    """Ask the prebuild's runner (which holds its snapshot and workspace) to remove its files.
    Robust as above: the reaper re-sends a deletion that stalls."""
    queue = EnvironmentClass.objects.select_related("runner").get(id=prebuild.environment_class_id).runner.queue
    _send_on_commit(DELETE_PREBUILD, prebuild.id, queue=queue)


def send_failure_webhook(prebuild: Prebuild) -> None:
    """Alert the project's webhook about a failed prebuild, from the control queue."""
    # Not robust: a broker that refuses the alert fails the caller (the worker's or the reaper's
    # pass), which logs it, rather than losing the alert without a trace.
    _send_on_commit(SEND_FAILURE_WEBHOOK, prebuild.id, robust=False)
