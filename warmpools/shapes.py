"""The request shapes of warm pools and environments (core.shapes). REST (warmpools.api), Connect
(dashboard.connect), the pool forms (warmpools.forms) and the services read them.

A pool's sizes have the rules of the gitpod.v1 request messages' descriptors (min 0 to 20, max and
desired 1 to 20), which every interface checks on the request message it builds (core.validation);
min <= max is the service's rule."""

from gitpod.v1 import prebuild_pb2 as pb

from core.shapes import Field, Shape
from core.validation import int_range

MIN_SIZE_RANGE = int_range(pb.CreateWarmPoolRequest, "min_size")
MAX_SIZE_RANGE = int_range(pb.CreateWarmPoolRequest, "max_size")

WARM_POOL = Shape(
    Field("project_id", "project_id", form="project"),
    Field(
        "environment_class_id",
        "environment_class_id",
        form="environment_class",
        help_text="must get prebuilds on the project; one pool per project and class",
    ),
    Field("min_size", "min_size", help_text="{} to {}, at most maxSize".format(*MIN_SIZE_RANGE)),
    Field("max_size", "max_size", help_text="{} to {}".format(*MAX_SIZE_RANGE)),
    # Deprecated: alone, it means min = max = desired_size (a page shows its errors on the maximum).
    Field(
        "desired_size",
        "desired_size",
        form="max_size",
        help_text="deprecated ({} to {}): use minSize and maxSize".format(*MAX_SIZE_RANGE),
    ),
)

# ListWarmPools' filter (at most 25 ids each, by its descriptor).
WARM_POOL_FILTER = Shape(
    Field("project_ids", "filter.project_ids", rest_name="project_ids"),
    Field("environment_class_ids", "filter.environment_class_ids", rest_name="environment_class_ids"),
)

CREATE_ENVIRONMENT = Shape(
    Field("project_id", "project_id"),
    Field("environment_class_id", "environment_class_id", help_text="absent: the project's default class"),
)

ENVIRONMENT_FILTER = Shape(
    Field("project_ids", "filter.project_ids", rest_name="project_ids", max_length=25),
)
