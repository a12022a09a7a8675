"""Creating environments from a pool's page: where each came from and how long it took, the result
polling while the runner restores or builds it, the pool's recent environments, and deleting one."""

from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from prebuilds.models import PrebuildPhase
from warmpools import status
from warmpools.models import (
    Environment,
    EnvironmentPhase,
    EnvironmentSource,
    InstanceState,
    PoolInstance,
    WarmPool,
    WarmPoolPhase,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(pool, name="environments", environment=None):
    args = [pool.id] if environment is None else [pool.id, environment.id]
    return reverse(f"warmpools:{name}", args=args)


def detail(pool):
    return reverse("warmpools:detail", args=[pool.id])


@pytest.fixture
def warm_pool(make_prebuild, make_pool, tmp_path):
    """A ready pool of `small` with one running instance of its snapshot: the next claim is a hit."""
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED)
    pool = make_pool(snapshot=snapshot, phase=WarmPoolPhase.READY, running_instances=1, status_desired_size=1)
    PoolInstance.objects.create(
        pool=pool, snapshot=snapshot, state=InstanceState.RUNNING, path=str(tmp_path / "i1"), ready_at=timezone.now()
    )
    return pool


def test_a_member_creates_an_environment_from_a_warm_instance(client, org, warm_pool):
    client.force_login(org.member)
    response = client.post(url(warm_pool), **HTMX)
    assert response.status_code == 200
    environment = Environment.objects.get()
    assert (environment.source, environment.phase, environment.creator) == ("pool", "ready", org.member)
    body = response.content.decode()
    # The result (swapped into the live region), ready at once: no polling.
    assert body.strip().startswith('<div class="environment-outcome"')
    assert ">Warm pool</span>" in body and "ready in " in body and " ms</strong>" in body
    assert f'hx-get="{url(warm_pool, "environment", environment)}"' not in body
    # The recent environments and the status card (one more hit, polling again while the
    # reconciler backfills) come along out of band.
    assert '<div id="pool-environments" hx-swap-oob="true"' in body and environment.get_source_display() in body
    assert 'id="pool-status" aria-labelledby="pool-status-heading" hx-swap-oob="true"' in body
    assert '<dt>Hits</dt><dd class="nums">1</dd>' in body
    assert 'hx-trigger="every 2s, page-visible from:body"' in body
    warm_pool.refresh_from_db()
    assert (warm_pool.hits, warm_pool.misses) == (1, 0)


def test_without_javascript_create_redirects_to_the_page_showing_the_result(client, org, warm_pool):
    client.force_login(org.admin)
    response = client.post(url(warm_pool))
    environment = Environment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{detail(warm_pool)}?environment={environment.id}"
    body = client.get(response["Location"]).content.decode()
    assert ">Warm pool</span>" in body and "ready in " in body
    # A stale or foreign environment id is ignored, not an error.
    assert client.get(f"{detail(warm_pool)}?environment=nonsense").status_code == 200


def test_a_miss_restores_the_snapshot_and_the_result_polls_until_ready(client, org, make_prebuild, make_pool):
    make_prebuild(phase=PrebuildPhase.COMPLETED)
    pool = make_pool()  # no running instance: a miss
    client.force_login(org.member)
    body = client.post(url(pool), **HTMX).content.decode()
    environment = Environment.objects.get()
    assert (environment.source, environment.phase) == (EnvironmentSource.SNAPSHOT, EnvironmentPhase.CREATING)
    result = url(pool, "environment", environment)
    assert ">Snapshot</span>" in body and "restoring the newest snapshot" in body
    assert f'hx-get="{result}" hx-trigger="every 1s"' in body
    pool.refresh_from_db()
    assert (pool.hits, pool.misses) == (0, 1)

    response = client.get(result, **HTMX)
    assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.content.decode()
    # The runner finishes it.
    Environment.objects.filter(pk=environment.pk).update(phase=EnvironmentPhase.READY, ready_after_ms=1234.0)
    response = client.get(result, **HTMX)
    body = response.content.decode()
    assert response.status_code == 286 and "ready in 1.2 s" in body and "hx-trigger" not in body


def test_a_cold_start_shows_its_failure_and_stops_polling(client, org, make_pool):
    pool = make_pool()  # no completed prebuild at all: cold
    client.force_login(org.member)
    body = client.post(url(pool), **HTMX).content.decode()
    environment = Environment.objects.get()
    assert environment.source == EnvironmentSource.COLD and ">Cold start</span>" in body
    Environment.objects.filter(pk=environment.pk).update(
        phase=EnvironmentPhase.FAILED, failure_message="onCreateCommand exited with status 3"
    )
    response = client.get(url(pool, "environment", environment), **HTMX)
    body = response.content.decode()
    assert response.status_code == 286
    assert 'role="alert"><strong>Failed:</strong> onCreateCommand exited with status 3' in body


def test_the_result_url_without_htmx_leads_to_the_page(client, org, make_pool, make_environment):
    pool = make_pool()
    environment = make_environment(pool, ready_after_ms=7)
    client.force_login(org.member)
    response = client.get(url(pool, "environment", environment))
    assert response.status_code == 302 and response["Location"] == f"{detail(pool)}?environment={environment.id}"
    assert client.get(url(pool))["Location"] == detail(pool)


def test_recent_environments_list_source_phase_time_creator_and_age(client, org, make_pool, make_environment):
    pool = make_pool()
    make_environment(pool, ready_after_ms=7.2, creator=org.admin)
    make_environment(pool, source=EnvironmentSource.SNAPSHOT, phase=EnvironmentPhase.CREATING)
    make_environment(pool, source=EnvironmentSource.COLD, phase=EnvironmentPhase.DELETED)
    client.force_login(org.member)
    response = client.get(detail(pool))
    body = response.content.decode()
    assert len(response.context["environments"]) == 2  # deleted ones are gone
    assert '<td data-label="Source">Warm pool</td>' in body and '<td data-label="Source">Snapshot</td>' in body
    assert '<td data-label="Source">Cold start</td>' not in body
    assert '<td class="nums" data-label="Ready after">7 ms</td>' in body
    assert '<td data-label="Creator">alice</td>' in body and '<td data-label="Creator">bob</td>' in body
    assert ">Creating</span>" in body and ">Ready</span>" in body
    assert body.count(">Delete</button>") == 1  # the member's own; the admin's is not theirs to delete
    # One is still being created: the list refreshes, then stops once everything shown is settled.
    assert f'hx-get="{url(pool)}" hx-trigger="every 2s"' in body
    assert client.get(url(pool), **HTMX).status_code == 200
    Environment.objects.filter(phase=EnvironmentPhase.CREATING).update(phase=EnvironmentPhase.READY)
    response = client.get(url(pool), **HTMX)
    assert response.status_code == 286 and "hx-trigger" not in response.content.decode()


def test_a_member_deletes_an_environment(client, org, make_pool, make_environment):
    pool = make_pool()
    environment = make_environment(pool, ready_after_ms=5, creator=org.member)
    client.force_login(org.member)
    asked = client.post(url(pool, "environment-delete", environment), **HTMX)
    question = asked.content.decode()
    assert asked["HX-Retarget"] == "#confirm-dialog" and f"Delete environment {str(environment.id)[:8]}?" in question
    assert "Its workspace on the runner is removed" in question and "from warm pool" in question
    environment.refresh_from_db()
    assert environment.phase == EnvironmentPhase.READY  # asking is not deleting
    response = client.post(url(pool, "environment-delete", environment), {"confirmed": "yes"}, **HTMX)
    body = response.content.decode()
    assert body.strip().startswith('<div id="pool-environments"') and ">Deleting</span>" in body
    assert ">Delete</button>" not in body and 'hx-trigger="every 2s"' in body
    environment.refresh_from_db()
    assert environment.phase == EnvironmentPhase.DELETING
    other = make_environment(pool, ready_after_ms=5)
    response = client.post(url(pool, "environment-delete", other), {"confirmed": "yes"})
    assert response.status_code == 302 and response["Location"] == detail(pool)


def test_a_member_cannot_delete_someone_elses_environment(client, org, make_pool, make_environment):
    pool = make_pool()
    admins = make_environment(pool, ready_after_ms=5, creator=org.admin)
    client.force_login(org.member)
    page = client.get(detail(pool)).content.decode()
    assert f'aria-label="Delete environment {str(admins.id)[:8]}"' not in page  # no button it may not use
    response = client.post(url(pool, "environment-delete", admins))
    assert response.status_code == 403  # and the server refuses anyway
    admins.refresh_from_db()
    assert admins.phase == EnvironmentPhase.READY


def test_outsiders_and_anonymous_visitors_cannot_create_or_delete(client, org, make_pool, make_environment):
    pool = make_pool()
    environment = make_environment(pool)
    response = client.post(url(pool))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(org.outsider)
    assert client.post(url(pool)).status_code == 404
    assert client.get(url(pool, "environment", environment), **HTMX).status_code == 404
    assert client.post(url(pool, "environment-delete", environment)).status_code == 404
    assert Environment.objects.count() == 1
    environment.refresh_from_db()
    assert environment.phase == EnvironmentPhase.READY


def test_an_environment_of_another_pool_is_not_found_here(client, org, make_pool, make_environment):
    pool, other = make_pool(), make_pool(environment_class=org.large)
    environment = make_environment(other)
    client.force_login(org.member)
    assert client.get(url(pool, "environment", environment), **HTMX).status_code == 404
    assert client.post(url(pool, "environment-delete", environment)).status_code == 404


def test_a_pool_being_deleted_offers_no_create(client, org, make_pool):
    pool = make_pool()
    WarmPool.objects.filter(pk=pool.pk).update(desired_phase=WarmPoolPhase.DELETED, phase=WarmPoolPhase.DELETING)
    client.force_login(org.member)
    assert ">Create environment</button>" not in client.get(detail(pool)).content.decode()


def test_a_container_environment_shows_its_container_and_polls_until_its_lifecycle_ran(client, org, warm_pool):
    """A hit of a container instance: the page names the image and the container, and keeps
    polling until postCreateCommand and postStartCommand finished, then shows their log."""
    PoolInstance.objects.filter(pool=warm_pool).update(path="instance-abc")
    warm_pool.snapshot.snapshot_image = "registry.test/prebuilds/x@sha256:" + "a" * 64
    warm_pool.snapshot.save(update_fields=["snapshot_image"])
    client.force_login(org.member)
    with mock.patch("warmpools.dispatch.finish_environment") as finish:
        client.post(url(warm_pool), **HTMX)
    environment = Environment.objects.get()
    finish.assert_called_once()
    assert (environment.container_name, environment.path) == ("instance-abc", "")
    body = client.get(url(warm_pool, "environment", environment), **HTMX).content.decode()
    assert "<code>instance-abc</code>" in body and "sha256:" + "a" * 64 in body
    assert "running in the container" in body
    assert f'hx-get="{url(warm_pool, "environment", environment)}"' in body  # still polling
    status.environment_log(environment=environment, step="postStartCommand", text="hello")
    status.environment_lifecycle_done(environment=environment, at=timezone.now())
    response = client.get(url(warm_pool, "environment", environment), **HTMX)
    body = response.content.decode()
    assert response.status_code == 286  # settled: the poll stops
    assert "[postStartCommand] hello" in body and "finished " in body
