"""A pool's failure message names the runner's folders by their place, as stored and as Connect
sends it (REST also redacts on the way out; Connect and the pages read what is stored)."""

import json

import pytest
from django.conf import settings
from django.test import Client

from projects.services import api_token_create
from warmpools import services
from warmpools import status as pool_status
from warmpools.models import WarmPool, WarmPoolPhase

pytestmark = pytest.mark.django_db


def test_a_pools_failure_message_is_stored_without_host_paths(org):
    pool = services.warm_pool_create(
        actor=org.admin, project=org.project, environment_class_id=org.small.id, max_size=1
    )
    folder = settings.POOLS_DIR / str(pool.id)
    pool_status.warm_pool_set_status(
        pool=pool, phase=WarmPoolPhase.DEGRADED, failure_message=f"cannot create {folder}/staged-1: disk full"
    )
    redacted = f"cannot create <warm pools>/{pool.id}/staged-1: disk full"
    assert WarmPool.objects.get(id=pool.id).failure_message == redacted

    _, secret = api_token_create(user=org.member, name="t")
    response = Client().post(
        "/gitpod.v1.PrebuildService/GetWarmPool",
        data=json.dumps({"warmPoolId": str(pool.id)}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    message = json.loads(response.content)["warmPool"]["status"]["failureMessage"]
    assert message == redacted
