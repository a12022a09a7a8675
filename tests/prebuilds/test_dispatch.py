"""Tasks are sent by name (prebuilds/dispatch.py), after commit, to the right queue: each message
read back from the broker names a task the worker has registered, with the prebuild's id, so a
misspelt name or a wrong queue fails here rather than leaving prebuilds PENDING in production."""

import pytest
from celery import current_app

from prebuilds import services, status, tasks
from prebuilds.models import Prebuild, PrebuildPhase
from projects import services as project_services

pytestmark = pytest.mark.django_db


def run_as_a_worker_would(name: str, args: list) -> None:
    """Look the task up by the message's name in the registry a worker uses, and run it here."""
    current_app.tasks[name](*args)


def test_a_new_prebuild_is_sent_to_its_runners_queue_after_commit(org, sent_tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        prebuild = services.prebuild_create(actor=org.member, project=org.project)
    assert sent_tasks("runner-test") == []  # nothing before the commit: a worker must see the row
    for callback in callbacks:
        callback()
    assert sent_tasks("runner-test") == [(tasks.run_prebuild.name, [str(prebuild.id)])]
    assert sent_tasks("control") == []


def test_each_prebuild_goes_to_the_queue_of_its_classs_runner(org, sent_tasks, django_capture_on_commit_callbacks):
    other = project_services.runner_create(organization=org.organization, name="other", queue="runner-other")
    remote = project_services.environment_class_create(runner=other, display_name="remote")
    project_services.project_update(
        actor=org.admin, project=org.project, prebuild_environment_class_ids=[org.small.id, remote.id]
    )
    with django_capture_on_commit_callbacks(execute=True):
        prebuild = services.prebuild_create(actor=org.member, project=org.project, environment_class_id=remote.id)
    assert sent_tasks("runner-other") == [(tasks.run_prebuild.name, [str(prebuild.id)])]
    assert sent_tasks("runner-test") == []


def test_the_reaper_resends_to_the_same_queue(org, sent_tasks, django_capture_on_commit_callbacks):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    with django_capture_on_commit_callbacks(execute=True):
        status.prebuild_enqueue(prebuild=prebuild)
    assert sent_tasks("runner-test") == [(tasks.run_prebuild.name, [str(prebuild.id)])]


def test_a_deletion_is_sent_to_the_runner_that_holds_the_files_and_finishes_there(
    org, sent_tasks, django_capture_on_commit_callbacks
):
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    with django_capture_on_commit_callbacks(execute=True):
        prebuild = services.prebuild_delete(actor=org.admin, prebuild=prebuild)
    assert prebuild.phase == PrebuildPhase.DELETING
    sent = sent_tasks("runner-test")
    assert sent == [(tasks.delete_prebuild.name, [str(prebuild.id)])]
    run_as_a_worker_would(*sent[0])
    assert Prebuild.objects.get(id=prebuild.id).phase == PrebuildPhase.DELETED
