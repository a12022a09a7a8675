"""The caller's roles are read once per request (User.organization_roles): a page's role checks,
visibility filters and organization switcher share one read of the memberships, and a token
request answered from the token cache reads none."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from prebuilds.models import PrebuildPhase
from projects import services
from projects.models import Role

pytestmark = pytest.mark.django_db


def membership_reads(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code == 200, response.content
    return sum('FROM "projects_membership"' in q["sql"] for q in queries)


@pytest.mark.parametrize("page", ["prebuild", "prebuild-status", "pool", "overview"])
def test_a_page_reads_the_callers_memberships_once(client, org, make_prebuild, make_pool, page):
    prebuild, pool = make_prebuild(phase=PrebuildPhase.RUNNING), make_pool()
    url, headers = {
        "prebuild": (f"/prebuilds/{prebuild.id}/", {}),
        "prebuild-status": (f"/prebuilds/{prebuild.id}/", {"HX-Request": "true", "HX-Target": "prebuild-status"}),
        "pool": (f"/warm-pools/{pool.id}/", {}),
        "overview": ("/", {}),
    }[page]
    client.force_login(org.admin)
    assert membership_reads(lambda: client.get(url, headers=headers)) == 1


def test_a_cached_token_brings_its_roles_and_reads_no_membership(org, api):
    member = api["member"]

    def call():
        return member.client.get("/api/v1/projects/", headers=member.headers)

    assert membership_reads(call) == 1  # the token's first use: its roles go into the cache
    assert membership_reads(call) == 0
    assert [p["id"] for p in call().json()["projects"]] == [str(org.project.id)]


def test_changing_a_membership_drops_the_roles_it_had_read(org):
    user = org.member
    assert user.organization_roles == {org.organization.id: Role.MEMBER}
    services.membership_set(organization=org.organization, user=user, role=Role.ADMIN)
    assert user.organization_roles == {org.organization.id: Role.ADMIN}
    assert [m.role for m in user.organization_memberships] == [Role.ADMIN]
