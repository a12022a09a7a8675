"""The request shapes of prebuilds: creating one, and the list's filter (core.shapes). REST
(prebuilds.api), Connect (dashboard.connect) and the trigger form (prebuilds.forms) read them."""

from core.shapes import Field, Shape

CREATE_PREBUILD = Shape(
    Field("project_id", "project_id", form="project"),
    Field(
        "environment_class_id",
        "environment_class_id",
        form="environment_class",
        help_text="default: the project's default class",
    ),
    # The range is the descriptor's (PrebuildSpec.timeout), checked on the request (core.validation).
    Field("timeout", "spec.timeout", help_text="300s to 7200s; default 3600s"),
)

# ListPrebuilds' filter. REST takes each as a query parameter of its own name, repeated for
# several values. Their limits (25 ids, 10 phases, 5 triggers, defined values) are the descriptor's.
PREBUILD_FILTER = Shape(
    Field("project_ids", "filter.project_ids", rest_name="project_ids"),
    Field("phases", "filter.phases", rest_name="phases"),
    Field("triggered_by", "filter.triggered_by", rest_name="triggered_by"),
    Field("creator_ids", "filter.creator_ids", rest_name="creator_ids"),
    Field("executor_ids", "filter.executor_ids", rest_name="executor_ids"),
)
