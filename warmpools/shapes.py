"""The request shapes of warm pools and environments (core.shapes). REST (warmpools.api), Connect
(dashboard.connect), the pool forms (warmpools.forms) and the services read them.

A pool's sizes are checked by the service, whatever the interface, in the words declared here;
the forms check the same limits first, in the same words."""

from core.shapes import Field, Shape

_NON_NEGATIVE = "{path} must be a non-negative integer"

WARM_POOL = Shape(
    Field("project_id", "project_id", form="project"),
    Field(
        "environment_class_id",
        "environment_class_id",
        form="environment_class",
        help_text="must get prebuilds on the project; one pool per project and class",
    ),
    # min_size has no upper limit of its own: it may not exceed max_size.
    Field("min_size", "min_size", min_value=0, min_message=_NON_NEGATIVE),
    Field("max_size", "max_size", min_value=0, max_value=20, min_message=_NON_NEGATIVE),
    # Deprecated: alone, it means min = max = desired_size (so max_size's limit is its limit, and
    # a page shows its errors on the maximum).
    Field(
        "desired_size",
        "desired_size",
        form="max_size",
        min_value=0,
        min_message=_NON_NEGATIVE,
        help_text="deprecated: use minSize and maxSize",
    ),
)

WARM_POOL_FILTER = Shape(
    Field("project_ids", "filter.project_ids", rest_name="project_ids", max_length=25),
    Field("environment_class_ids", "filter.environment_class_ids", rest_name="environment_class_ids", max_length=25),
)

CREATE_ENVIRONMENT = Shape(
    Field("project_id", "project_id"),
    Field("environment_class_id", "environment_class_id", help_text="absent: the project's default class"),
)

ENVIRONMENT_FILTER = Shape(
    Field("project_ids", "filter.project_ids", rest_name="project_ids", max_length=25),
)
