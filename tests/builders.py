"""Builders for tests. Plain functions that make only what a test asks for, in few statements: users,
an organization with its members, a runner with classes. And fixtures for the page tests: prebuilds
and pools in a given state, made through the services and then moved to the state under test the
way the runner side would report it."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep
from projects.models import EnvironmentClass, Membership, Organization, Role, Runner
from warmpools import services as pool_services
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource, WarmPool

# The rows below are the ones the services write (organization_create, membership_set, runner_create,
# environment_class_create), written together: one INSERT per table instead of one per row, and none
# of the services' re-reads. What the services do besides, forgetting a user's cached roles and
# tokens, has nothing to forget for users made here. The services have tests of their own.


def make_users(*usernames, **fields) -> list:
    """Users whose password is "pw-<username>" (as create_user makes them), in one INSERT."""
    User = get_user_model()
    users = []
    for username in usernames:
        user = User(username=User.normalize_username(username), **fields)
        user.set_password("pw-" + username)
        users.append(user)
    return User.objects.bulk_create(users)


def make_organization(name, *, admin=None, members=()) -> Organization:
    """An organization with an admin and members (role MEMBER): two INSERTs."""
    organization = Organization.objects.create(name=name)
    memberships = [Membership(organization=organization, user=admin, role=Role.ADMIN)] if admin else []
    memberships += [Membership(organization=organization, user=user, role=Role.MEMBER) for user in members]
    Membership.objects.bulk_create(memberships)
    return organization


def make_runner(organization, *, name="local", queue="runner-test") -> Runner:
    return Runner.objects.create(organization=organization, name=name, queue=queue)


def make_classes(runner, *display_names, **fields) -> list[EnvironmentClass]:
    """Environment classes of a runner with the services' defaults (the model's), in one INSERT."""
    return EnvironmentClass.objects.bulk_create(
        [EnvironmentClass(runner=runner, display_name=name, **fields) for name in display_names]
    )


@pytest.fixture
def make_prebuild(org):
    def make(*, actor=None, environment_class=None, phase=PrebuildPhase.PENDING, **status) -> Prebuild:
        prebuild = prebuild_services.prebuild_create(
            actor=actor or org.member,
            project=org.project,
            environment_class_id=(environment_class or org.small).id,
        )
        if phase != PrebuildPhase.PENDING or status:
            now = timezone.now()
            if phase != PrebuildPhase.PENDING:
                status.setdefault("started_at", now - timedelta(minutes=3))
            if phase in (PrebuildPhase.COMPLETED, PrebuildPhase.FAILED, PrebuildPhase.CANCELLED):
                status.setdefault("completion_time", now)
            # Status is the runner side's to write; a test stands in for it.
            Prebuild.objects.filter(pk=prebuild.pk).update(phase=phase, **status)
            prebuild.refresh_from_db()
        return prebuild

    return make


@pytest.fixture
def add_step():
    def add(prebuild, position, name, seconds, outcome=PrebuildStep.Outcome.SUCCEEDED, **extra):
        start = timezone.now() - timedelta(minutes=10) + timedelta(seconds=position * 60)
        return PrebuildStep.objects.create(
            prebuild=prebuild,
            position=position,
            name=name,
            started_at=start,
            ended_at=start + timedelta(seconds=seconds) if seconds is not None else None,
            outcome=outcome,
            **extra,
        )

    return add


@pytest.fixture
def make_pool(org):
    def make(*, environment_class=None, min_size=1, max_size=3, **status) -> WarmPool:
        pool = pool_services.warm_pool_create(
            actor=org.admin,
            project=org.project,
            environment_class_id=(environment_class or org.small).id,
            min_size=min_size,
            max_size=max_size,
        )
        if status:
            WarmPool.objects.filter(pk=pool.pk).update(**status)
            pool.refresh_from_db()
        return pool

    return make


@pytest.fixture
def make_environment(org):
    """An environment of `pool` in a given state, the way environment_create and the runner leave it
    (written directly: the page tests are about what is shown, the services have their own)."""

    def make(pool, *, source=EnvironmentSource.POOL, phase=EnvironmentPhase.READY, creator=None, **fields):
        if phase in (EnvironmentPhase.DELETING, EnvironmentPhase.DELETED):
            fields.setdefault("desired_phase", EnvironmentPhase.DELETED)  # only a delete request gets it there
        return Environment.objects.create(
            organization_id=pool.organization_id,
            project_id=pool.project_id,
            environment_class_id=pool.environment_class_id,
            pool=pool,
            creator=creator or org.member,
            source=source,
            phase=phase,
            **fields,
        )

    return make
