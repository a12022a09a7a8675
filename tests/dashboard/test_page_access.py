"""Every page, for every kind of visitor: anonymous people are sent to log in, outsiders learn
nothing (404 for another organization's objects, empty lists), members and admins see the page."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(org, make_prebuild, make_pool):
    return {"prebuild": make_prebuild(), "pool": make_pool(), "project": org.project}


def page_urls(objects):
    return {
        "overview": reverse("overview"),
        "prebuilds": reverse("prebuilds:list"),
        "prebuild": reverse("prebuilds:detail", args=[objects["prebuild"].id]),
        "pools": reverse("warmpools:list"),
        "pool": reverse("warmpools:detail", args=[objects["pool"].id]),
        "projects": reverse("projects:list"),
        "project": reverse("projects:detail", args=[objects["project"].id]),
        "tokens": reverse("api-tokens"),
    }


DETAIL_PAGES = {"prebuild", "pool", "project"}
PAGES = ["overview", "prebuilds", "prebuild", "pools", "pool", "projects", "project", "tokens"]


@pytest.mark.parametrize(
    "page", ["overview", "prebuilds", "prebuild", "pools", "pool", "projects", "project", "tokens"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, objects, page):
    url = page_urls(objects)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert f"next={url}" in response["Location"] or page == "overview"


@pytest.mark.parametrize(
    "page", ["overview", "prebuilds", "prebuild", "pools", "pool", "projects", "project", "tokens"]
)
def test_outsiders_get_404_for_objects_and_empty_lists(client, org, objects, page):
    client.force_login(org.outsider)
    response = client.get(page_urls(objects)[page])
    if page in DETAIL_PAGES:
        assert response.status_code == 404
        assert "There is nothing here" in response.content.decode()
    else:
        assert response.status_code == 200
        body = response.content.decode()
        assert str(objects["project"].id) not in body
        assert str(objects["prebuild"].id) not in body
        assert str(objects["pool"].id) not in body


@pytest.mark.parametrize("role", ["member", "admin"])
@pytest.mark.parametrize(
    "page", ["overview", "prebuilds", "prebuild", "pools", "pool", "projects", "project", "tokens"]
)
def test_members_and_admins_see_every_page(client, org, objects, page, role):
    client.force_login(getattr(org, role))
    response = client.get(page_urls(objects)[page])
    assert response.status_code == 200
    body = response.content.decode()
    # The layout: navigation, the CSRF header on <body> for htmx, htmx from django-htmx's static files.
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert "/static/django_htmx/htmx-2.min.js" in body
    assert "<script>" not in body  # no inline scripts (a CSP will forbid them)
    assert 'aria-label="Main"' in body


def test_malformed_ids_are_not_found(client, org):
    client.force_login(org.member)
    assert client.get("/prebuilds/not-a-uuid/").status_code == 404
    assert client.get("/warm-pools/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/projects/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_staff_see_the_admin_link_and_others_do_not(client, org):
    client.force_login(org.member)
    assert reverse("admin:index") not in client.get(reverse("overview")).content.decode()
    org.admin.is_staff = True
    org.admin.save()
    client.force_login(org.admin)
    assert f'href="{reverse("admin:index")}"' in client.get(reverse("overview")).content.decode()
    assert client.get(reverse("admin:index")).status_code == 200
