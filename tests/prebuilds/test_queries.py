from datetime import timedelta

import pytest

from core.errors import InvalidArgument
from core.pagination import MAX_PAGE_SIZE, paginate
from prebuilds import services
from prebuilds.models import Prebuild, PrebuildPhase, PrebuildTrigger
from prebuilds.queries import PrebuildFilter, expected_durations, prebuilds_for

pytestmark = pytest.mark.django_db

SCOPE = "test-list"


def make(org, n, **kwargs):
    return [services.prebuild_create(actor=org.member, project=org.project, **kwargs) for _ in range(n)]


def test_pages_walk_every_row_once_newest_first(org):
    created = make(org, 7)
    seen, token = [], ""
    while True:
        page = paginate(prebuilds_for(org.member), scope=SCOPE, page_size=3, token=token)
        seen += page.items
        token = page.next_token
        if not token:
            break
    assert [p.id for p in seen] == [p.id for p in sorted(created, key=lambda p: (p.created_at, p.id), reverse=True)]


def test_tokens_stay_stable_while_new_rows_arrive(org):
    make(org, 4)
    first = paginate(prebuilds_for(org.member), scope=SCOPE, page_size=2)
    make(org, 3)  # newer rows must not shift the next page
    second = paginate(prebuilds_for(org.member), scope=SCOPE, page_size=2, token=first.next_token)
    assert not {p.id for p in first.items} & {p.id for p in second.items}
    assert all(p.created_at <= first.items[-1].created_at for p in second.items)


def test_page_size_defaults_to_25_and_takes_up_to_100(org):
    Prebuild.objects.bulk_create(
        [
            Prebuild(
                organization=org.organization, project=org.project, environment_class=org.small, creator=org.member
            )
            for _ in range(MAX_PAGE_SIZE + 5)
        ]
    )
    assert len(paginate(prebuilds_for(org.member), scope=SCOPE).items) == 25
    assert len(paginate(prebuilds_for(org.member), scope=SCOPE, page_size=100).items) == 100
    # More is refused where the request is checked (PaginationRequest's rule); asked for anyway,
    # paginate refuses rather than capping in silence.
    for size in (101, -1):
        with pytest.raises(ValueError):
            paginate(prebuilds_for(org.member), scope=SCOPE, page_size=size)


@pytest.mark.parametrize("token", ["garbage", "eyJ4IjoxfQ", "!!!"])
def test_a_forged_token_is_invalid_argument(org, token):
    with pytest.raises(InvalidArgument) as exc:
        paginate(prebuilds_for(org.member), scope=SCOPE, token=token)
    assert exc.value.field == "pagination.token"


def test_filters(org):
    manual = make(org, 2)
    large = make(org, 1, environment_class_id=org.large.id)[0]
    scheduled = make(org, 1, triggered_by=PrebuildTrigger.SCHEDULED)[0]
    services.prebuild_cancel(actor=org.member, prebuild=manual[0])

    def ids(**kw):
        return {p.id for p in prebuilds_for(org.member, PrebuildFilter(**kw))}

    assert ids(phases=[PrebuildPhase.CANCELLED]) == {manual[0].id}
    assert ids(triggered_by=[PrebuildTrigger.SCHEDULED]) == {scheduled.id}
    assert ids(environment_class_ids=[org.large.id]) == {large.id}
    assert ids(creator_ids=[org.member.id]) == {manual[0].id, manual[1].id, large.id, scheduled.id}
    assert ids(creator_ids=[org.admin.id]) == set()
    assert ids(project_ids=[org.project.id]) == ids()
    assert prebuilds_for(org.outsider).count() == 0
    # Undefined enum values are refused by the request's rule (core.validation), before the query.
    with pytest.raises(InvalidArgument):
        ids(project_ids=["nope"])


def test_expected_durations_are_each_pairs_newest_completed_run_in_one_query(
    org, make_prebuild, django_assert_num_queries
):
    old = make_prebuild(phase=PrebuildPhase.COMPLETED)
    newer = make_prebuild(phase=PrebuildPhase.COMPLETED)
    Prebuild.objects.filter(pk=old.pk).update(completion_time=old.started_at + timedelta(seconds=300))
    Prebuild.objects.filter(pk=newer.pk).update(completion_time=newer.started_at + timedelta(seconds=90))
    make_prebuild(phase=PrebuildPhase.FAILED)  # not a completed run
    running_small = make_prebuild(phase=PrebuildPhase.RUNNING)
    running_large = make_prebuild(environment_class=org.large, phase=PrebuildPhase.RUNNING)  # no completed run
    with django_assert_num_queries(1):
        found = expected_durations([running_small, running_large])
    assert found == {(org.project.id, org.small.id): timedelta(seconds=90)}
    assert expected_durations([]) == {}
