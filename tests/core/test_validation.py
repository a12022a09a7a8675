"""core.validation: the gitpod.v1 request rules as the descriptors declare them, named by field path,
with the two gaps of protovalidate 0.7.1 closed (enum items, nanoseconds)."""

import pytest
from buf.validate import validate_pb2
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.pagination_pb2 import PaginationRequest
from google.protobuf.duration_pb2 import Duration

from core.errors import InvalidArgument
from core.validation import int_range, validate, violations

ID = "3f1c5b0e-0000-4000-8000-000000000000"
F = pb.ListPrebuildsRequest.Filter


def create(**spec):
    return pb.CreatePrebuildRequest(project_id=ID, spec=pb.PrebuildSpec(**spec))


def paths(message):
    return [path for path, _ in violations(message)]


def test_a_valid_request_has_no_violations():
    assert violations(create(timeout=Duration(seconds=3600))) == []
    validate(pb.ListPrebuildsRequest(filter=F(project_ids=[ID] * 25, phases=[10] * 10)))


def test_violations_name_the_path_in_protovalidates_words():
    found = violations(pb.CreatePrebuildRequest(project_id="nope", environment_class_id=""))
    assert found == [
        ("project_id", "value must be a valid UUID"),
        ("environment_class_id", "value is empty, which is not a valid UUID"),
        ("spec", "value is required"),
    ]
    # Items of a repeated field carry their index; the list's own rule names the list.
    assert paths(pb.ListPrebuildsRequest(filter=F(creator_ids=[ID, "x"]))) == ["filter.creator_ids[1]"]
    assert paths(pb.ListPrebuildsRequest(filter=F(creator_ids=[ID] * 26))) == ["filter.creator_ids"]
    assert paths(pb.ListPrebuildsRequest(pagination=PaginationRequest(page_size=101))) == ["pagination.page_size"]


def test_validate_raises_invalid_argument_naming_the_first_field_with_every_violation():
    with pytest.raises(InvalidArgument) as exc:
        validate(pb.UpdateWarmPoolRequest(warm_pool_id=ID, min_size=21, max_size=0))
    error = exc.value
    assert error.field == "min_size"
    assert error.message == (
        "min_size: value must be greater than or equal to 0 and less than or equal to 20; "
        "max_size: value must be greater than or equal to 1 and less than or equal to 20"
    )
    (details,) = error.details
    assert isinstance(details, validate_pb2.Violations)
    assert [v.constraint_id for v in details.violations] == ["int32.gte_lte", "int32.gte_lte"]
    with pytest.raises(InvalidArgument) as exc:
        validate(PaginationRequest(page_size=-1), prefix="pagination")
    assert exc.value.field == "pagination.page_size"


def test_an_explicitly_empty_class_is_invalid_an_absent_one_is_not():
    request = create()
    assert paths(request) == []
    request.environment_class_id = ""
    assert paths(request) == ["environment_class_id"]


@pytest.mark.parametrize(
    ("seconds", "nanos", "valid"),
    [(299, 999_999_999, False), (300, 0, True), (7200, 0, True), (7200, 1, False), (7199, 999_999_999, True)],
)
def test_the_timeout_is_300s_to_7200s_to_the_nanosecond(seconds, nanos, valid):
    # cel-python's durations stop at microseconds: 7200 s and one nanosecond read as 7200 s there.
    assert (paths(create(timeout=Duration(seconds=seconds, nanos=nanos))) == []) is valid


def test_undefined_enum_values_are_refused_also_as_list_items():
    assert paths(create(desired_phase=5)) == ["spec.desired_phase"]
    assert paths(create(desired_phase=pb.PREBUILD_PHASE_CANCELLED)) == []
    # protovalidate 0.7.1 skips defined_only for the items of a repeated enum: core.validation adds it.
    request = pb.ListPrebuildsRequest(filter=F(phases=[pb.PREBUILD_PHASE_PENDING, 5], triggered_by=[3]))
    assert violations(request) == [
        ("filter.phases[1]", "value must be one of the defined enum values"),
        ("filter.triggered_by[0]", "value must be one of the defined enum values"),
    ]
    # UNSPECIFIED is a defined value: accepted (and matches nothing).
    assert paths(pb.ListPrebuildsRequest(filter=F(phases=[0], triggered_by=[0]))) == []


def test_desired_size_zero_means_absent_on_create_and_is_invalid_on_update():
    ids = {"project_id": ID, "environment_class_id": ID}
    assert paths(pb.CreateWarmPoolRequest(**ids, desired_size=0)) == []
    assert paths(pb.CreateWarmPoolRequest(**ids, desired_size=21)) == ["desired_size"]
    assert paths(pb.UpdateWarmPoolRequest(warm_pool_id=ID, desired_size=0)) == ["desired_size"]
    assert paths(pb.CreateWarmPoolRequest(**ids, max_size=0)) == ["max_size"]
    assert paths(pb.CreateWarmPoolRequest(**ids)) == []  # sizes are optional fields


def test_int_range_reads_the_bounds_off_the_descriptor():
    assert int_range(pb.ListPrebuildsRequest, "pagination.page_size") == (0, 100)
    assert int_range(pb.CreateWarmPoolRequest, "max_size") == (1, 20)
    assert int_range(pb.UpdateWarmPoolRequest, "min_size") == (0, 20)
