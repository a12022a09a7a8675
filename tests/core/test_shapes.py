"""core.shapes: a declared field's spellings, and REST data as the service's arguments."""

from core.rest import rest_field
from core.shapes import Field, Shape

SHAPE = Shape(
    Field("name", "name", max_length=3),
    Field("executor_id", "prebuild_configuration.executor", form="executor"),
    Field("class_ids", "prebuild_configuration.environment_class_ids"),
    Field("project_ids", "filter.project_ids", rest_name="project_ids"),
)


def test_spellings_follow_the_path():
    assert SHAPE.class_ids.rest == "prebuildConfiguration.environmentClassIds"
    assert SHAPE.class_ids.key == "environmentClassIds"
    assert SHAPE.project_ids.rest == "project_ids"
    # The REST error handler names a service's error field as the shape spells it.
    assert rest_field(SHAPE.class_ids.path) == SHAPE.class_ids.rest
    assert rest_field(SHAPE.project_ids.path) == SHAPE.project_ids.rest


def test_from_rest_keeps_only_what_the_request_carried():
    data = {"name": "abc", "prebuildConfiguration": {"executor": None}}
    assert SHAPE.from_rest(data) == {"name": "abc", "executor_id": None}
    assert SHAPE.from_rest({"prebuildConfiguration": {}}) == {}
    assert SHAPE.from_rest({"project_ids": []}) == {"project_ids": []}


def test_errors_land_on_the_form_field_and_limits_read_as_the_service_says():
    assert SHAPE.form_errors()["prebuild_configuration.executor"] == "executor"
    assert SHAPE.name.limits() == {"max_length": 3}
    assert SHAPE.name.length_error() == "name must be at most 3 characters"
