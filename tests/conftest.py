"""Shared fixtures: a small organization with an admin, a member and an outsider, a runner, classes
and a project with prebuilds enabled on one class."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from projects import services as project_services
from projects.models import Role

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_REPO_SCRIPT = REPO_ROOT.parent / "shared" / "fixtures" / "make_sample_repo.py"


def is_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


@pytest.fixture
def make_user(db):
    def make(username, **extra):
        return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)

    return make


@pytest.fixture
def org(db, make_user):
    admin = make_user("alice")
    member = make_user("bob")
    outsider = make_user("mallory")
    organization = project_services.organization_create(name="Acme", admin=admin)
    project_services.membership_set(organization=organization, user=member, role=Role.MEMBER)
    other = project_services.organization_create(name="Other", admin=outsider)
    runner = project_services.runner_create(organization=organization, name="local", queue="runner-test")
    small = project_services.environment_class_create(runner=runner, display_name="small")
    large = project_services.environment_class_create(runner=runner, display_name="large")
    unconfigured = project_services.environment_class_create(runner=runner, display_name="gpu")
    project = project_services.project_create(
        actor=admin,
        organization=organization,
        name="app",
        repository_url="/srv/git/app",
        default_environment_class=small,
        prebuilds_enabled=True,
        prebuild_environment_classes=[small, large],
        prebuild_timeout=timedelta(minutes=30),
    )

    class Org:
        pass

    o = Org()
    o.organization, o.other = organization, other
    o.admin, o.member, o.outsider = admin, member, outsider
    o.runner, o.small, o.large, o.unconfigured, o.project = runner, small, large, unconfigured, project
    return o


def pytest_configure(config):
    from django.conf import settings

    # Password hashing is deliberately slow; the tests create many users and do not test hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
