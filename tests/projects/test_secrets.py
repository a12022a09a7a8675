"""Organization and project secrets: rules, encryption at rest, key rotation, masking."""

import base64
from types import SimpleNamespace
from urllib.parse import quote, quote_plus

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from core.errors import InvalidArgument, NotFound, PermissionDenied
from core.masking import MASK, secret_masker
from projects import services
from projects.models import Secret, SecretAction, SecretChange, SecretScope
from runner._proc import _split

VALUE = "s3cr3t-Token/with+signs&=="
OTHER_VALUE = "project-override-value"


@pytest.fixture
def keys(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    return settings


def org_secret(org, name="NPM_TOKEN", value=VALUE, scope=SecretScope.BOTH):
    return services.secret_set(actor=org.admin, organization=org.organization, name=name, value=value, scope=scope)


@pytest.mark.django_db
def test_the_database_holds_ciphertext_only(org, keys):
    org_secret(org)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM projects_secret")
        rows = cursor.fetchall()
        cursor.execute("SELECT * FROM projects_secretchange")
        rows += cursor.fetchall()
    dump = repr(rows)
    assert "NPM_TOKEN" in dump
    for form in (VALUE, base64.b64encode(VALUE.encode()).decode(), quote(VALUE, safe="")):
        assert form not in dump
    assert services.prebuild_secret_env(org.project) == {"NPM_TOKEN": VALUE}


@pytest.mark.django_db
def test_key_rotation_keeps_every_secret_readable(org, keys):
    org_secret(org, "A_TOKEN")
    services.secret_set(actor=org.admin, project=org.project, name="B_TOKEN", value=OTHER_VALUE)
    old_key = keys.SECRETS_ENCRYPTION_KEYS[0]
    before = dict(Secret.objects.values_list("name", "encrypted_value"))
    new_key = Fernet.generate_key().decode()
    keys.SECRETS_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_secrets_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    after = dict(Secret.objects.values_list("name", "encrypted_value"))
    assert set(after) == {"A_TOKEN", "B_TOKEN"}
    for name in after:
        assert after[name] != before[name]
        Fernet(new_key).decrypt(after[name].encode())  # readable with the new key alone
    keys.SECRETS_ENCRYPTION_KEYS = [new_key]
    assert services.prebuild_secret_env(org.project) == {"A_TOKEN": VALUE, "B_TOKEN": OTHER_VALUE}


@pytest.mark.django_db
def test_project_secret_overrides_organization_secret_and_scopes_filter(org, keys):
    org_secret(org, "TOKEN", VALUE)
    org_secret(org, "ENV_ONLY", "environments-only", scope=SecretScope.ENVIRONMENTS)
    org_secret(org, "PREBUILD_ONLY", "prebuilds-only", scope=SecretScope.PREBUILDS)
    services.secret_set(actor=org.admin, project=org.project, name="TOKEN", value=OTHER_VALUE)
    assert services.prebuild_secret_env(org.project) == {"TOKEN": OTHER_VALUE, "PREBUILD_ONLY": "prebuilds-only"}
    assert services.environment_secret_env(org.project) == {"TOKEN": OTHER_VALUE, "ENV_ONLY": "environments-only"}


@pytest.mark.django_db
def test_other_organization_secrets_are_not_in_force(org, keys):
    services.secret_set(actor=org.outsider, organization=org.other, name="TOKEN", value=VALUE)
    assert services.prebuild_secret_env(org.project) == {}


@pytest.mark.django_db
def test_only_admins_write_members_list_outsiders_get_not_found(org, keys):
    secret = org_secret(org)
    with pytest.raises(PermissionDenied):
        services.secret_set(actor=org.member, organization=org.organization, name="X_TOKEN", value=VALUE)
    with pytest.raises(PermissionDenied):
        services.secret_delete(actor=org.member, secret=secret)
    with pytest.raises(PermissionDenied):
        services.secret_set(actor=org.member, project=org.project, name="X_TOKEN", value=VALUE)
    assert [s.name for s in services.secrets_list(user=org.member, organization=org.organization)] == ["NPM_TOKEN"]
    for call in (
        lambda: services.secrets_list(user=org.outsider, organization=org.organization),
        lambda: services.secrets_list(user=org.outsider, project=org.project),
        lambda: services.secret_set(actor=org.outsider, organization=org.organization, name="X_TOKEN", value=VALUE),
        lambda: services.secret_delete(actor=org.outsider, secret=secret),
        lambda: services.secret_get(user=org.outsider, secret_id=secret.id, organization=org.organization),
    ):
        with pytest.raises(NotFound):
            call()
    assert Secret.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "1ABC"}, "name"),
        ({"name": "A-B"}, "name"),
        ({"name": "A B"}, "name"),
        ({"name": ""}, "name"),
        ({"scope": "everywhere"}, "scope"),
        ({"value": "abc"}, "value"),
        ({"value": "a\x00bcdef"}, "value"),
    ],
)
def test_secrets_are_validated_and_errors_never_name_the_value(org, keys, fields, field):
    arguments = {"name": "GOOD_NAME", "value": VALUE, "scope": SecretScope.BOTH, **fields}
    with pytest.raises(InvalidArgument) as exc:
        services.secret_set(actor=org.admin, organization=org.organization, **arguments)
    assert exc.value.field == field
    assert arguments["value"] not in str(exc.value)
    assert not Secret.objects.exists()


@pytest.mark.django_db
def test_each_change_is_recorded_without_the_value(org, keys):
    secret = org_secret(org)
    org_secret(org, value=OTHER_VALUE, scope=SecretScope.PREBUILDS)
    services.secret_delete(actor=org.admin, secret=secret)
    changes = list(services.secret_changes(user=org.member, organization=org.organization))
    assert [(c.name, c.action, c.actor) for c in changes] == [
        ("NPM_TOKEN", SecretAction.DELETED, org.admin),
        ("NPM_TOKEN", SecretAction.REPLACED, org.admin),
        ("NPM_TOKEN", SecretAction.CREATED, org.admin),
    ]
    assert Secret.objects.count() == 0
    assert SecretChange.objects.count() == 3
    assert list(services.secret_changes(user=org.member, project=org.project)) == []


@pytest.mark.django_db
def test_names_are_unique_per_owner(org, keys):
    org_secret(org)
    services.secret_set(actor=org.admin, project=org.project, name="NPM_TOKEN", value=OTHER_VALUE)
    assert Secret.objects.filter(name="NPM_TOKEN").count() == 2
    org_secret(org, value=OTHER_VALUE)  # replaces, not a second one
    assert Secret.objects.filter(name="NPM_TOKEN").count() == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        Secret.objects.create(organization=org.organization, name="NPM_TOKEN", encrypted_value="x")


@pytest.mark.parametrize(
    "form",
    [
        VALUE,
        base64.b64encode(VALUE.encode()).decode(),
        base64.b64encode(VALUE.encode()).decode().rstrip("="),
        base64.urlsafe_b64encode(VALUE.encode()).decode(),
        quote(VALUE, safe=""),
        quote_plus(VALUE),
    ],
)
def test_masking_replaces_every_form(form):
    mask = secret_masker([VALUE, "unrelated-value"])
    masked = mask(f"before {form} after")
    assert masked == f"before {MASK} after"


def test_masking_a_line_written_in_pieces():
    """A program writing the value in two pieces: the runner joins them into one line before the
    reporter masks it (runner._proc._split), and the masked line is what is stored."""
    watched = SimpleNamespace(_tails={}, label="onCreateCommand")
    out = []
    half = len(VALUE) // 2
    _split(watched, "stdout", f"token={VALUE[:half]}".encode(), out)
    _split(watched, "stdout", f"{VALUE[half:]} done\n".encode(), out)
    assert [secret_masker([VALUE])(text) for _, _, text in out] == [f"token={MASK} done"]


def test_masking_without_values_is_identity():
    assert secret_masker([])("anything at all") == "anything at all"
