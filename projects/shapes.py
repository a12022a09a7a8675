"""The request shape of a project: each field once, with its REST, Connect-path and form names and
its limits (core.shapes). REST (projects.api), the configuration form (projects.forms) and the
services (projects.services) read them from here."""

from core.shapes import Field, Shape

PROJECT = Shape(
    Field(
        "organization_id",
        "organization_id",
        help_text="on create: needed only when you are admin of several organizations",
    ),
    Field("name", "name", max_length=200),
    Field("repository_url", "repository_url", max_length=1000),
    Field("branch", "branch", max_length=255),
    Field("devcontainer_path", "devcontainer_path", max_length=500),
    Field("default_environment_class_id", "default_environment_class_id"),
    Field("access_token", "access_token", max_length=500),
    Field("webhook_url", "webhook_url", max_length=1000),
    # The prebuild configuration (named as in Ona's project API).
    Field("prebuilds_enabled", "prebuild_configuration.enabled"),
    Field(
        "prebuild_environment_class_ids",
        "prebuild_configuration.environment_class_ids",
        form="prebuild_environment_classes",
        max_length=100,
        help_text="classes that get prebuilds",
    ),
    Field(
        "prebuild_timeout",
        "prebuild_configuration.timeout",
        # The range itself is PROJECT_MIN_PREBUILD_TIMEOUT..PREBUILD_MAX_TIMEOUT (settings).
        help_text="5 minutes to 2 hours; default 3600s",
    ),
    Field(
        "daily_schedule_hour_utc",
        "prebuild_configuration.trigger.daily_schedule.hour_utc",
        min_value=0,
        max_value=23,
        min_message="daily schedule hour must be between {min_value} and {max_value}",
        max_message="daily schedule hour must be between {min_value} and {max_value}",
    ),
    Field(
        "executor_id",
        "prebuild_configuration.executor",
        form="executor",
        help_text="whose credentials clone; null: the creator",
    ),
    Field("enable_jetbrains_warmup", "prebuild_configuration.enable_jetbrains_warmup"),
)

# The service's keyword arguments for a project's fields (all but the organization, which is the
# project's place, not one of its fields).
PROJECT_FIELDS = frozenset(field.name for field in PROJECT) - {"organization_id"}
