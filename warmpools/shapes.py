"""The request shapes of warm pools and environments (core.shapes). REST (warmpools.api), Connect
(dashboard.connect), the pool forms (warmpools.forms) and the services read them.

A pool's sizes have the rules of the gitpod.v1 request messages' descriptors (min 0 to 20, max and
desired 1 to 20), which every interface checks on the request message it builds (core.validation);
min <= max is the service's rule."""

from gitpod.v1 import prebuild_pb2 as pb

from core.errors import InvalidArgument
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


# An exec in an environment (POST /api/v1/environments/<id>/exec/): the argument vector and how
# long it may run. Checked here only; REST (and later the terminal's automation) read it through this.
EXEC_MAX_ARGS = 256
EXEC_MAX_ARG_LENGTH = 64 * 1024
EXEC_TIMEOUT_RANGE = (1, 600)
EXEC_DEFAULT_TIMEOUT = 60


def exec_request(data) -> tuple[list[str], int]:
    """{"command": [str, ...], "timeoutSeconds": N} -> (argv, timeout seconds), or InvalidArgument."""
    if not isinstance(data, dict):
        raise InvalidArgument("the request body must be a JSON object")
    unknown = sorted(set(data) - {"command", "timeoutSeconds"})
    if unknown:
        raise InvalidArgument(f"unknown fields: {', '.join(unknown)}", field=unknown[0])
    command = data.get("command")
    if not isinstance(command, list) or not command:
        raise InvalidArgument("command must be a non-empty list of strings", field="command")
    if len(command) > EXEC_MAX_ARGS:
        raise InvalidArgument(f"command has at most {EXEC_MAX_ARGS} arguments", field="command")
    for argument in command:
        if not isinstance(argument, str):
            raise InvalidArgument("command must be a list of strings", field="command")
        if len(argument) > EXEC_MAX_ARG_LENGTH or "\x00" in argument:
            raise InvalidArgument(
                f"each argument of command is at most {EXEC_MAX_ARG_LENGTH} characters, without NUL", field="command"
            )
    timeout = data.get("timeoutSeconds", EXEC_DEFAULT_TIMEOUT)
    low, high = EXEC_TIMEOUT_RANGE
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not low <= timeout <= high:
        raise InvalidArgument(f"timeoutSeconds must be a whole number from {low} to {high}", field="timeoutSeconds")
    return list(command), timeout
