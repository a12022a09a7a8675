"""A limit declared once holds in every interface that takes the field: REST, Connect and the page
forms accept the largest value and refuse the next. For the gitpod.v1 methods the limit is the
descriptor's (checked on the request message by core.validation, in protovalidate's words for the
APIs); for the others it is declared in the shapes (core.shapes, */shapes.py). The pages say it in a
person's words (projects/forms.py), next to the field, and their inputs carry the same limits."""

import pytest

from projects.models import Project
from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db


def create_pool(kind, org, api, client, max_size):
    """Create a pool of (project, small) through one interface: (created, error message or None)."""
    ids = {"projectId": str(org.project.id), "environmentClassId": str(org.small.id)}
    if kind == "rest":
        response = api["admin"].rest("post", "/api/v1/warm-pools/", {**ids, "minSize": 0, "maxSize": max_size})
        return response.status_code == 201, response.json().get("message")
    if kind == "connect":
        response = api["admin"].connect_json("CreateWarmPool", {**ids, "minSize": 0, "maxSize": max_size})
        return response.status_code == 200, response.json().get("message")
    client.force_login(org.admin)
    data = {"project": ids["projectId"], "environment_class": ids["environmentClassId"], "min_size": 0}
    response = client.post("/warm-pools/", {**data, "max_size": max_size})
    form = response.context["create_form"] if response.status_code == 200 else None
    return response.status_code == 302, (form.errors["max_size"][0] if form else None)


def resize_pool(kind, org, api, client, pool, sizes):
    if kind == "rest":
        body = {"minSize": sizes[0], "maxSize": sizes[1]}
        response = api["admin"].rest("post", f"/api/v1/warm-pools/{pool.id}/resize/", body)
        return response.status_code == 200, response.json().get("message")
    if kind == "connect":
        body = {"warmPoolId": str(pool.id), "minSize": sizes[0], "maxSize": sizes[1]}
        response = api["admin"].connect_json("UpdateWarmPool", body)
        return response.status_code == 200, response.json().get("message")
    client.force_login(org.admin)
    response = client.post(f"/warm-pools/{pool.id}/", {"min_size": sizes[0], "max_size": sizes[1]})
    if response.status_code == 302:
        return True, None
    form = response.context["resize_form"]
    return False, next(iter(form.errors.values()))[0]


# The rule's words, as protovalidate says them; REST names the field as its JSON does, Connect by its
# path, and the form shows the words next to the field.
MAX_RULE = "value must be greater than or equal to 1 and less than or equal to 20"
MIN_RULE = "value must be greater than or equal to 0 and less than or equal to 20"
MAX_WORDS = "Enter a number of instances from 1 to 20."
MIN_WORDS = "Enter a number of instances from 0 to 20."
TOO_BIG = {"rest": f"maxSize: {MAX_RULE}", "connect": f"max_size: {MAX_RULE}", "form": MAX_WORDS}
NEGATIVE = {"rest": f"minSize: {MIN_RULE}", "connect": f"min_size: {MIN_RULE}", "form": MIN_WORDS}
KINDS = ["rest", "connect", "form"]


@pytest.mark.parametrize("kind", KINDS)
def test_create_accepts_max_size_20_and_refuses_21(org, api, client, kind):
    assert create_pool(kind, org, api, client, 21) == (False, TOO_BIG[kind])
    assert not WarmPool.objects.exists()
    assert create_pool(kind, org, api, client, 20) == (True, None)
    assert WarmPool.objects.get().max_size == 20


@pytest.mark.parametrize("kind", KINDS)
def test_resize_accepts_max_size_20_and_refuses_21_and_negative_sizes(org, api, client, make_pool, kind):
    pool = make_pool(min_size=1, max_size=3)
    assert resize_pool(kind, org, api, client, pool, (1, 21)) == (False, TOO_BIG[kind])
    assert resize_pool(kind, org, api, client, pool, (-1, 3)) == (False, NEGATIVE[kind])
    assert resize_pool(kind, org, api, client, pool, (0, 0)) == (False, TOO_BIG[kind])  # max_size 0: at least 1
    pool.refresh_from_db()
    assert (pool.min_size, pool.max_size) == (1, 3)
    assert resize_pool(kind, org, api, client, pool, (2, 20)) == (True, None)
    pool.refresh_from_db()
    assert (pool.min_size, pool.max_size) == (2, 20)


@pytest.mark.parametrize("kind", ["rest", "form"])
def test_the_daily_schedule_hour_is_0_to_23(org, api, client, kind):
    def set_hour(hour):
        if kind == "rest":
            body = {"prebuildConfiguration": {"trigger": {"dailySchedule": {"hourUtc": hour}}}}
            response = api["admin"].rest("patch", f"/api/v1/projects/{org.project.id}/", body)
            return response.status_code == 200, response.json().get("field")
        client.force_login(org.admin)
        data = {"name": "app", "repository_url": "/srv/git/app", "prebuilds_enabled": "on"}
        data.update(prebuild_timeout="30m", daily_schedule_hour_utc=hour)
        data["prebuild_environment_classes"] = [str(org.small.id)]
        response = client.post(f"/projects/{org.project.id}/", data)
        if response.status_code == 302:
            return True, None
        return False, response.context["form"].errors["daily_schedule_hour_utc"][0]

    refused = {
        "rest": "prebuildConfiguration.trigger.dailySchedule.hourUtc",
        "form": "Enter an hour from 0 to 23, or leave it empty.",
    }
    for hour in (24, -1):
        assert set_hour(hour) == (False, refused[kind])
    assert Project.objects.get(pk=org.project.pk).daily_schedule_hour_utc is None
    for hour in (0, 23):
        assert set_hour(hour) == (True, None)
        assert Project.objects.get(pk=org.project.pk).daily_schedule_hour_utc == hour


@pytest.mark.parametrize("kind", ["rest", "connect"])
def test_list_filters_take_at_most_25_ids(org, api, kind):
    def listed(count):
        ids = [str(org.project.id)] * count
        if kind == "rest":
            response = api["member"].client.get(
                "/api/v1/warm-pools/", {"project_ids": ids}, headers=api["member"].headers
            )
        else:
            response = api["member"].connect_json("ListWarmPools", {"filter": {"projectIds": ids}})
        return response.status_code

    assert (listed(25), listed(26)) == (200, 400)
