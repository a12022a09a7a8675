"""/warm-pools/ and /warm-pools/<id>/: rows with the gauge, refreshing by version, create (admins),
resize, delete, a degraded pool explained, environments deleted after a confirmation."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from prebuilds.models import Prebuild, PrebuildPhase
from warmpools.models import WarmPool, WarmPoolPhase

pytestmark = pytest.mark.django_db

LIST = "/warm-pools/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def detail(pool, name="detail"):
    return reverse(f"warmpools:{name}", args=[pool.id])


def test_rows_show_phase_gauge_snapshot_and_failure(client, org, make_prebuild, make_pool):
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED)
    pool = make_pool(
        min_size=1,
        max_size=4,
        phase=WarmPoolPhase.DEGRADED,
        running_instances=2,
        stopped_instances=1,
        status_desired_size=3,
        failure_message="snapshot checksum mismatch",
        snapshot=snapshot,
    )
    client.force_login(org.member)
    body = client.get(LIST).content.decode()
    assert ">Degraded</span>" in body
    assert "The snapshot this pool warms is damaged" in body  # the problem in words, not the raw message
    assert f'<a href="{detail(pool)}">app <span class="muted">/</span> small</a>' in body  # linked by its name
    assert 'role="img" aria-label="2 running, 1 stopped, target 3; min 1, max 4"' in body
    assert "2 / 1 / 3" in body and "1–4" in body
    assert f'href="{reverse("prebuilds:detail", args=[snapshot.id])}"' in body  # snapshot links to its prebuild
    assert detail(pool) in body


def test_rows_show_hits_misses_and_claim_latency_p95(client, org, make_pool, make_environment):
    pool = make_pool(hits=7, misses=2)
    idle = make_pool(environment_class=org.large)
    for ms in [4, 5, 6, 1500]:
        make_environment(pool, ready_after_ms=ms)
    client.force_login(org.member)
    response = client.get(LIST)
    body = response.content.decode()
    assert '<td class="nums" data-label="Hits">7</td>' in body and '<td class="nums" data-label="Misses">2</td>' in body
    assert dict((p.id, p95) for p, p95, _ in response.context["rows"]) == {pool.id: 1500, idle.id: None}
    assert '<td class="nums" data-label="Claim p95">1.5 s</td>' in body  # nearest rank: the largest of 4
    assert '<td class="nums" data-label="Claim p95">—</td>' in body  # the other pool has no claim yet


def test_list_runs_the_same_number_of_queries_for_1_and_many_pools(
    client, org, make_pool, make_prebuild, make_environment
):
    from projects import services as project_services

    make_environment(make_pool(), ready_after_ms=10)
    client.force_login(org.admin)
    client.get(LIST)
    with CaptureQueriesContext(connection) as one:
        client.get(LIST)
    # One pool per (project, class): more pools need more classes.
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED)
    classes = [project_services.environment_class_create(runner=org.runner, display_name=f"c{i}") for i in range(6)]
    project_services.project_update(
        actor=org.admin,
        project=org.project,
        prebuild_environment_class_ids=[c.id for c in (org.small, org.large, *classes)],
    )
    for environment_class in [org.large, *classes]:
        pool = make_pool(environment_class=environment_class, snapshot=snapshot)
        make_environment(pool, ready_after_ms=12)
    with CaptureQueriesContext(connection) as many:
        response = client.get(LIST)
    assert len(response.context["pools"]) == 8
    assert len(many) == len(one) <= 10


def test_rows_refresh_while_open_and_cost_a_204_when_nothing_changed(client, org, make_pool, make_environment):
    pool = make_pool(phase=WarmPoolPhase.READY, running_instances=1, stopped_instances=2, status_desired_size=1)
    client.force_login(org.member)
    page = client.get(LIST).content.decode()
    assert 'hx-trigger="every 2s, page-visible from:body"' in page  # settled, and still refreshed
    version = page.split('"X-Shown-Version": "', 1)[1].split('"', 1)[0]
    rows = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "pool-rows", "HTTP_X_SHOWN_VERSION": version}
    assert client.get(LIST, **rows).status_code == 204
    WarmPool.objects.filter(pk=pool.pk).update(hits=1)  # a claim
    assert client.get(LIST, **rows).status_code == 200
    make_pool(environment_class=org.large)  # a new pool
    rows["HTTP_X_SHOWN_VERSION"] = client.get(LIST).content.decode().split('"X-Shown-Version": "', 1)[1][:18]
    assert client.get(LIST, **rows).status_code == 204


# --- create ------------------------------------------------------------------------------------------


def test_create_form_is_for_admins_only(client, org):
    client.force_login(org.member)
    assert "Create warm pool" not in client.get(LIST).content.decode()
    response = client.post(LIST, {"project": org.project.id, "environment_class": org.small.id, "max_size": 2})
    assert response.status_code == 403
    assert not WarmPool.objects.exists()
    client.force_login(org.admin)
    body = client.get(LIST).content.decode()
    assert ">Create warm pool</button>" in body
    assert '<label for="id_min_size">Minimum instances</label>' in body


def test_create_offers_only_classes_enabled_for_the_project(client, org):
    client.force_login(org.admin)
    form = client.get(LIST).context["create_form"]
    assert [label for _, label in form.fields["environment_class"].widget.choices] == ["large", "small"]
    body = client.get(reverse("warmpools:classes"), {"project": org.project.id}, **HTMX).content.decode()
    assert body.strip().startswith('<div id="class-select">') and "gpu" not in body


def test_admin_creates_a_pool(client, org):
    client.force_login(org.admin)
    response = client.post(
        LIST, {"project": org.project.id, "environment_class": org.large.id, "min_size": 1, "max_size": 3}, **HTMX
    )
    pool = WarmPool.objects.get()
    assert response["HX-Redirect"] == detail(pool)
    assert (pool.environment_class, pool.min_size, pool.max_size) == (org.large, 1, 3)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        # CreateWarmPool's rules (its descriptor's, in a person's words), as the APIs apply them
        ({"max_size": 21}, "max_size", "Enter a number of instances from 1 to 20."),
        ({"max_size": 0}, "max_size", "Enter a number of instances from 1 to 20."),
        ({"min_size": -1}, "min_size", "Enter a number of instances from 0 to 20."),
        ({"environment_class": ""}, "environment_class", "Choose an environment class that gets prebuilds"),
        ({"min_size": 5, "max_size": 2}, "min_size", "The minimum (5) cannot be more than the maximum (2)."),
        ({"max_size": "many"}, "max_size", "Enter a number of instances from 1 to 20."),
        # the service's
        ({"environment_class": "gpu"}, "environment_class", "environment class 'gpu' does not have prebuilds enabled"),
    ],
)
def test_create_errors_are_shown_next_to_the_field(client, org, data, field, message):
    client.force_login(org.admin)
    post = {"project": str(org.project.id), "environment_class": str(org.small.id), "min_size": 0, "max_size": 2}
    post.update(data)
    if post["environment_class"] == "gpu":
        post["environment_class"] = str(org.unconfigured.id)
    response = client.post(LIST, post, **HTMX)
    assert response.status_code == 200
    errors = response.context["create_form"].errors
    assert any(message in e for e in errors[field]), errors
    assert response.content.decode().strip().startswith('<form id="create-pool-form"')
    assert not WarmPool.objects.exists()


def test_every_field_error_shows_at_once_and_the_inputs_carry_the_limits(client, org):
    client.force_login(org.admin)
    body = client.get(LIST).content.decode()
    assert 'name="min_size" value="0" min="0" max="20"' in body and 'name="max_size" value="2" min="1" max="20"' in body
    post = {"project": str(org.project.id), "environment_class": "", "min_size": 50, "max_size": 50}
    errors = client.post(LIST, post, **HTMX).context["create_form"].errors
    assert set(errors) == {"environment_class", "min_size", "max_size"}


def test_a_second_pool_for_the_same_pair_is_refused(client, org, make_pool):
    make_pool()
    client.force_login(org.admin)
    response = client.post(LIST, {"project": org.project.id, "environment_class": org.small.id, "max_size": 2})
    errors = response.context["create_form"].errors["environment_class"]
    assert errors == ["a warm pool for project 'app' and class 'small' exists"]
    assert WarmPool.objects.count() == 1


# --- detail: resize and delete ---------------------------------------------------------------------


def test_detail_shows_the_pool_its_metrics_and_who_may_do_what(client, org, make_pool, make_prebuild):
    snapshot = make_prebuild(phase=PrebuildPhase.COMPLETED)
    Prebuild.objects.filter(pk=snapshot.pk).update(completion_time=timezone.now() - timedelta(minutes=5))
    pool = make_pool(
        running_instances=1, status_desired_size=2, snapshot=snapshot, hits=3, misses=1, idle_instance_seconds=5400
    )
    client.force_login(org.member)
    response = client.get(detail(pool))
    body = response.content.decode()
    assert "1 running" in body and "target 2" in body and "min 1, max 3" in body
    assert "data-placeholder" not in body
    assert '<dt>Hits</dt><dd class="nums">3</dd>' in body and '<dt>Misses</dt><dd class="nums">1</dd>' in body
    assert '<dt>Claim latency p95</dt><dd class="nums">—</dd>' in body  # no claim measured yet
    assert '<dt>Snapshot age</dt><dd class="nums">5m 00s</dd>' in body
    assert '<dt>Idle instance-hours</dt><dd class="nums">1.50 h</dd>' in body
    # Members create environments; only admins resize and delete.
    assert ">Create environment</button>" in body
    assert "Resize</button>" not in body and "Delete warm pool" not in body
    client.force_login(org.admin)
    body = client.get(detail(pool)).content.decode()
    assert ">Resize</button>" in body and "Delete warm pool" in body and ">Create environment</button>" in body


def test_admin_resizes_and_sees_the_new_gauge_out_of_band(client, org, make_pool):
    pool = make_pool(min_size=1, max_size=3)
    client.force_login(org.admin)
    response = client.post(detail(pool), {"min_size": 2, "max_size": 5}, **HTMX)
    body = response.content.decode()
    assert body.strip().startswith('<form id="resize-form"') and "Resized." in body
    assert 'id="pool-status"' in body and 'hx-swap-oob="true"' in body and "min 2, max 5" in body
    pool.refresh_from_db()
    assert (pool.min_size, pool.max_size) == (2, 5)
    response = client.post(detail(pool), {"min_size": 1, "max_size": 4})
    assert response.status_code == 302


def test_a_resized_pool_polls_until_the_reconciler_reaches_the_new_sizes(client, org, make_pool):
    pool = make_pool(min_size=1, max_size=2, phase=WarmPoolPhase.READY, running_instances=1, stopped_instances=1)
    WarmPool.objects.filter(pk=pool.pk).update(status_desired_size=1)
    status = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "pool-status"}
    client.force_login(org.admin)
    assert client.get(detail(pool), **status).status_code == 286
    # A settled-looking status (1 running of target 1) under sizes it does not meet yet.
    body = client.post(detail(pool), {"min_size": 2, "max_size": 3}, **HTMX).content.decode()
    assert 'id="pool-status"' in body and 'hx-trigger="every 2s, page-visible from:body"' in body
    assert client.get(detail(pool), **status).status_code == 200
    # The reconciler's pass: 2 running, 1 staged.
    WarmPool.objects.filter(pk=pool.pk).update(running_instances=2, stopped_instances=1, status_desired_size=2)
    assert client.get(detail(pool), **status).status_code == 286


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"min_size": 4, "max_size": 3}, "min_size", "The minimum (4) cannot be more than the maximum (3)."),
        ({"min_size": 0, "max_size": 30}, "max_size", "Enter a number of instances from 1 to 20."),
    ],
)
def test_resize_errors_are_inline(client, org, make_pool, data, field, message):
    pool = make_pool()
    client.force_login(org.admin)
    response = client.post(detail(pool), data, **HTMX)
    assert any(message in e for e in response.context["resize_form"].errors[field])
    assert f'id="id_{field}_error"' in response.content.decode()


def test_members_cannot_resize_or_delete(client, org, make_pool):
    pool = make_pool()
    client.force_login(org.member)
    assert client.post(detail(pool), {"min_size": 0, "max_size": 1}).status_code == 403
    assert client.get(detail(pool, "delete")).status_code == 403
    assert client.post(detail(pool, "delete")).status_code == 403
    pool.refresh_from_db()
    assert (pool.max_size, pool.desired_phase) == (3, WarmPoolPhase.UNSPECIFIED)


def test_outsiders_cannot_touch_a_pool(client, org, make_pool):
    pool = make_pool()
    client.force_login(org.outsider)
    assert client.post(detail(pool), {"max_size": 1}).status_code == 404
    assert client.post(detail(pool, "delete")).status_code == 404


def test_admin_deletes_after_confirming(client, org, make_pool):
    pool = make_pool()
    client.force_login(org.admin)
    confirm = client.get(detail(pool, "delete"))
    assert confirm.status_code == 200 and "Delete warm pool?" in confirm.content.decode()
    pool.refresh_from_db()
    assert pool.desired_phase == WarmPoolPhase.UNSPECIFIED  # asking is not deleting
    response = client.post(detail(pool, "delete"))
    assert response.status_code == 302 and response["Location"] == LIST
    pool.refresh_from_db()
    assert pool.desired_phase == WarmPoolPhase.DELETED and pool.phase == WarmPoolPhase.DELETING


def test_detail_polls_until_settled_and_stops_when_deleted(client, org, make_pool):
    pool = make_pool()
    client.force_login(org.member)
    status = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "pool-status"}
    assert client.get(detail(pool), **status).status_code == 200
    WarmPool.objects.filter(pk=pool.pk).update(
        phase=WarmPoolPhase.READY, running_instances=1, stopped_instances=2, status_desired_size=1
    )
    assert client.get(detail(pool), **status).status_code == 286
    WarmPool.objects.filter(pk=pool.pk).update(phase=WarmPoolPhase.DELETED)
    response = client.get(detail(pool), **status)
    assert response.status_code == 286 and "has been deleted" in response.content.decode()
