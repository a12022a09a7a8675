"""A logs token reads its prebuild's logs for one hour: still good at 59 minutes, refused at 61.
The hour is written out here, not read from the module, so a shorter lifetime shows."""

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import Unauthenticated
from prebuilds import services
from prebuilds.logtokens import logs_token_verify

pytestmark = pytest.mark.django_db

ISSUED = datetime(2030, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def issued(org, time_machine):
    time_machine.move_to(ISSUED, tick=False)
    prebuild = services.prebuild_create(actor=org.member, project=org.project)
    return prebuild, services.prebuild_create_logs_token(actor=org.member, prebuild=prebuild)


def read_logs(client, prebuild, token):
    return client.get(f"/logs/{prebuild.id}", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_token_still_reads_the_logs_at_59_minutes(client, issued, time_machine):
    prebuild, token = issued
    time_machine.move_to(ISSUED + timedelta(minutes=59), tick=False)
    assert read_logs(client, prebuild, token).status_code == 200
    logs_token_verify(token, prebuild_id=prebuild.id)  # raises when refused


def test_the_token_is_refused_at_61_minutes(client, issued, time_machine):
    prebuild, token = issued
    time_machine.move_to(ISSUED + timedelta(minutes=61), tick=False)
    response = read_logs(client, prebuild, token)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    with pytest.raises(Unauthenticated, match="expired"):
        logs_token_verify(token, prebuild_id=prebuild.id)
