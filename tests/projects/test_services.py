import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.errors import AlreadyExists, InvalidArgument, PermissionDenied, Unauthenticated
from projects import services
from projects.models import ApiToken

pytestmark = pytest.mark.django_db


def update(org, **fields):
    return services.project_update(actor=org.admin, project=org.project, **fields)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prebuild_timeout": timedelta(minutes=4, seconds=59)}, "prebuild_configuration.timeout"),
        ({"prebuild_timeout": timedelta(hours=2, seconds=1)}, "prebuild_configuration.timeout"),
        ({"daily_schedule_hour_utc": 24}, "prebuild_configuration.trigger.daily_schedule.hour_utc"),
        ({"daily_schedule_hour_utc": -1}, "prebuild_configuration.trigger.daily_schedule.hour_utc"),
        ({"name": "  "}, "name"),
        ({"repository_url": "ftp://example.com/x.git"}, "repository_url"),
        ({"repository_url": "https://user:secret@example.com/x.git"}, "repository_url"),
        ({"repository_url": "relative/path"}, "repository_url"),
        ({"devcontainer_path": "../outside.json"}, "devcontainer_path"),
        ({"branch": "--upload-pack=evil"}, "branch"),
        ({"webhook_url": "javascript:alert(1)"}, "webhook_url"),
    ],
)
def test_project_configuration_is_validated(org, fields, field):
    with pytest.raises(InvalidArgument) as exc:
        update(org, **fields)
    assert exc.value.field == field
    org.project.refresh_from_db()
    assert org.project.prebuild_timeout == timedelta(minutes=30)


def test_project_timeout_bounds_are_inclusive(org):
    assert update(org, prebuild_timeout=timedelta(minutes=5)).prebuild_timeout == timedelta(minutes=5)
    assert update(org, prebuild_timeout=timedelta(hours=2)).prebuild_timeout == timedelta(hours=2)


def test_executor_must_be_a_member(org):
    with pytest.raises(InvalidArgument):
        update(org, executor_id=org.outsider.id)
    assert update(org, executor_id=org.member.id).executor == org.member


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"default_environment_class_id": "nope"}, "default_environment_class_id", "environment class nope not found"),
        ({"prebuild_environment_class_ids": [uuid.uuid4()]}, "prebuild_configuration.environment_class_ids", None),
        ({"executor_id": uuid.uuid4()}, "prebuild_configuration.executor", "executor not found"),
    ],
)
def test_ids_that_name_nothing_are_refused_by_the_service(org, fields, field, message):
    with pytest.raises(InvalidArgument) as exc:
        update(org, **fields)
    assert exc.value.field == field
    assert message is None or exc.value.message == message


def test_another_organizations_class_is_refused_by_the_service(org):
    theirs = services.environment_class_create(
        runner=services.runner_create(organization=org.other, name="theirs", queue="runner-theirs"),
        display_name="theirs",
    )
    with pytest.raises(InvalidArgument) as exc:
        update(org, default_environment_class_id=theirs.id)
    assert (exc.value.field, exc.value.message) == (
        "default_environment_class_id",
        "default environment class not found",
    )
    with pytest.raises(InvalidArgument) as exc:
        update(org, prebuild_environment_class_ids=[org.small.id, theirs.id])
    assert exc.value.message == f"environment class {theirs.id} not found"
    assert set(org.project.prebuild_environment_classes.all()) == {org.small, org.large}


def test_the_role_is_checked_before_any_id_is_looked_up(org):
    with pytest.raises(PermissionDenied):
        services.project_update(actor=org.member, project=org.project, default_environment_class_id=uuid.uuid4())


def test_only_admins_edit_projects(org):
    with pytest.raises(PermissionDenied):
        services.project_update(actor=org.member, project=org.project, name="x")


def test_project_names_are_unique_per_organization(org):
    with pytest.raises(AlreadyExists):
        services.project_create(actor=org.admin, organization=org.organization, name="app", repository_url="/x")


def test_removing_a_class_announces_it(org):
    received = []

    def listener(sender, project, removed_class_ids, **kwargs):
        received.append(removed_class_ids)

    services.prebuild_configuration_changed.connect(listener)
    try:
        from django.test import TestCase

        with TestCase.captureOnCommitCallbacks(execute=True):
            update(org, prebuild_environment_class_ids=[org.small.id])
        with TestCase.captureOnCommitCallbacks(execute=True):
            update(org, prebuilds_enabled=False)
    finally:
        services.prebuild_configuration_changed.disconnect(listener)
    assert received == [{org.large.id}, {org.small.id}]


def test_api_tokens_are_stored_hashed_and_authenticate(org):
    token, secret = services.api_token_create(user=org.member, name="ci")
    assert secret not in token.token_hash and secret.startswith("pbk_")
    assert not ApiToken.objects.filter(token_hash__contains=secret).exists()
    assert services.api_token_authenticate(secret) == org.member
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("secret", ["", "pbk_wrong", "Bearer x", "pbk_" + "a" * 43])
def test_bad_tokens_are_refused(org, secret):
    with pytest.raises(Unauthenticated):
        services.api_token_authenticate(secret)


def test_revoked_tokens_are_refused(org):
    token, secret = services.api_token_create(user=org.member, name="ci")
    services.api_token_revoke(actor=org.member, token=token)
    with pytest.raises(Unauthenticated):
        services.api_token_authenticate(secret)


ISSUED_AT = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def test_a_token_expires_when_its_lifetime_has_passed_by_the_clock_it_is_given(org, time_machine):
    time_machine.move_to(ISSUED_AT - timedelta(days=365), tick=False)  # the wall clock says nothing
    token, secret = services.api_token_create(
        user=org.member, name="short", expires_in=timedelta(days=1), now=ISSUED_AT
    )
    assert token.expires_at == ISSUED_AT + timedelta(days=1)
    last_second = ISSUED_AT + timedelta(days=1) - timedelta(seconds=1)
    assert services.api_token_authenticate(secret, now=last_second) == org.member  # and now it is cached
    with pytest.raises(Unauthenticated, match="expired"):
        services.api_token_authenticate(secret, now=ISSUED_AT + timedelta(days=1))
    assert ApiToken.objects.get(id=token.id).last_used_at == last_second


def test_inactive_users_tokens_are_refused(org):
    _, secret = services.api_token_create(user=org.member, name="ci")
    org.member.is_active = False
    org.member.save()
    with pytest.raises(Unauthenticated):
        services.api_token_authenticate(secret)
