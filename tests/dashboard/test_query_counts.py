"""Every list endpoint of both APIs runs the same number of queries for 1 item as for 100."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from prebuilds.models import Prebuild
from projects.models import EnvironmentClass, Project
from warmpools.models import WarmPool

pytestmark = pytest.mark.django_db


def fill(org, n, prefix):
    """n prebuilds, pools, projects and classes in the organization (bulk: no rules needed here)."""
    classes = EnvironmentClass.objects.bulk_create(
        EnvironmentClass(runner=org.runner, display_name=f"{prefix}c{i}") for i in range(n)
    )
    projects = Project.objects.bulk_create(
        Project(organization=org.organization, name=f"{prefix}p{i}", repository_url="/srv/x", executor=org.admin)
        for i in range(n)
    )
    for project in projects[:3]:
        project.prebuild_environment_classes.set(classes[:2])
    Prebuild.objects.bulk_create(
        Prebuild(
            organization=org.organization,
            project=org.project,
            environment_class=org.small,
            creator=org.member,
            executor=org.admin,
            timeout=timedelta(hours=1),
        )
        for _ in range(n)
    )
    WarmPool.objects.bulk_create(
        WarmPool(
            organization=org.organization,
            project=org.project,
            environment_class=c,
            runner=org.runner,
            max_size=2,
        )
        for c in classes
    )


def count(call):
    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code == 200, response.content
    return len(queries), response


LISTS = [
    ("rest", "/api/v1/prebuilds/", "prebuilds"),
    ("rest", "/api/v1/warm-pools/", "warmPools"),
    ("rest", "/api/v1/projects/", "projects"),
    ("rest", "/api/v1/environment-classes/", "environmentClasses"),
    ("connect", "ListPrebuilds", "prebuilds"),
    ("connect", "ListWarmPools", "warmPools"),
]


@pytest.mark.parametrize("api_kind, target, key", LISTS, ids=[t for _, t, _ in LISTS])
def test_list_queries_do_not_grow_with_the_page(org, api, api_kind, target, key):
    def call():
        if api_kind == "rest":
            return api["admin"].client.get(target, {"page_size": 100}, headers=api["admin"].headers)
        return api["admin"].connect_json(target, {"pagination": {"pageSize": 100}})

    fill(org, 1, "a")
    call()  # the token's first use records last_used_at (a write made at most once a minute)
    few, response = count(call)
    assert 1 <= len(json.loads(response.content)[key]) <= 5
    fill(org, 99, "b")
    many, response = count(call)
    assert len(json.loads(response.content)[key]) == 100
    assert many == few, f"{few} queries for a handful, {many} for 100"
