"""Helpers for the page tests: prebuilds and pools in a given state, made through the services and
then moved to the state under test the way the runner side would report it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from prebuilds import services as prebuild_services
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildStep
from warmpools import services as pool_services
from warmpools.models import Environment, EnvironmentPhase, EnvironmentSource, WarmPool


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
