"""REST API for projects and environment classes, and what every REST endpoint shares: the error
body, paging, the duration format and the JSON form of gitpod.v1 messages."""

from __future__ import annotations

import functools
import re

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from projects import services
from projects.errors import DomainError, InvalidArgument, NotFound
from projects.models import EnvironmentClass, Organization, Project
from projects.pagination import paginate
from projects.proto import duration, parse_duration

# --- errors ------------------------------------------------------------------------------------

# The HTTP status of each error code, as the Connect protocol maps them, so both APIs agree.
HTTP_STATUS = {
    "invalid_argument": 400,
    "failed_precondition": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "already_exists": 409,
    "aborted": 409,
    "resource_exhausted": 429,
}

_DRF_CODES = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "unimplemented",
    406: "invalid_argument",
    415: "invalid_argument",
    429: "resource_exhausted",
}

# Service and query field names are the protobuf ones; REST spells them as its JSON (camelCase)
# or, for paging and filters, as its query parameters.
_REST_FIELDS = {"pagination.page_size": "page_size", "pagination.token": "token"}


def rest_field(field: str | None) -> str | None:
    if not field:
        return field
    if field in _REST_FIELDS:
        return _REST_FIELDS[field]
    if field.startswith("filter."):
        return field.removeprefix("filter.")
    return ".".join(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part) for part in field.split("."))


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="invalid_argument, not_found, already_exists, failed_precondition, ...")
    message = serializers.CharField()
    field = serializers.CharField(required=False, help_text="the offending input, when there is one")
    details = serializers.JSONField(required=False, help_text="every invalid field, for a validation error")


def error_response(code: str, message: str, *, field: str | None = None, status_code: int | None = None):
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return Response(body, status=status_code or HTTP_STATUS.get(code, 500))


def _first_error(detail, path=()):
    """(field path, message) of the first message in a DRF validation error."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_error(value, (*path, str(key)))
    if isinstance(detail, list) and detail:
        if isinstance(detail[0], (dict, list)):
            return _first_error(detail[0], path)
        return ".".join(p for p in path if p != "non_field_errors"), str(detail[0])
    return ".".join(path), str(detail)


def exception_handler(exc, context):
    """One error body for the whole REST API: {"code", "message", "field"?}, the Connect codes."""
    if isinstance(exc, DomainError):
        field = rest_field(exc.field)
        message = exc.message
        if field and exc.field and exc.field in message:
            message = message.replace(exc.field, field)
        return error_response(exc.code, message, field=field)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _DRF_CODES.get(response.status_code, "invalid_argument")
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        response.data = {"code": code, "message": f"{field}: {message}" if field else message, "details": exc.detail}
        if field:
            response.data["field"] = field
    elif isinstance(exc, exceptions.Throttled):
        wait = max(1, round(exc.wait or 1))
        # The token-guessing block (projects.authentication) brings its own message.
        message = getattr(exc, "message", None) or f"too many requests for this API token; retry in {wait} s"
        response.data = {"code": code, "message": message}
    else:
        response.data = {"code": code, "message": str(getattr(exc, "detail", exc))}
    return response


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="invalid_argument or failed_precondition"),
    401: OpenApiResponse(ErrorSerializer, description="unauthenticated: no or bad token"),
    403: OpenApiResponse(ErrorSerializer, description="permission_denied: role too low"),
    404: OpenApiResponse(ErrorSerializer, description="not_found (also another organization's object)"),
    429: OpenApiResponse(ErrorSerializer, description="resource_exhausted: throttled, see Retry-After"),
}
CONFLICT = {409: OpenApiResponse(ErrorSerializer, description="already_exists or aborted")}


def responses(ok, *codes, conflict=False):
    """The documented answers of an endpoint: `ok` for its success status, errors for the rest."""
    documented = {**ok, **{code: ERRORS[code] for code in (401, 429, *codes)}}
    if conflict:
        documented.update(CONFLICT)
    return documented


# --- shared fields and paging ------------------------------------------------------------------

DURATION_PATTERN = r"^-?[0-9]+(\.[0-9]{1,9})?s$"


@extend_schema_field({"type": "string", "pattern": DURATION_PATTERN, "example": "3600s"})
class DurationField(serializers.CharField):
    """A protobuf JSON duration: whole or fractional seconds with an "s" suffix, e.g. "3600s"."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        try:
            return parse_duration(text, field=self.field_name)
        except InvalidArgument:
            raise serializers.ValidationError('must be a duration in seconds such as "3600s"') from None

    def to_representation(self, value):
        return duration(value).ToJsonString()


class PageQuerySerializer(serializers.Serializer):
    page_size = serializers.IntegerField(
        required=False, min_value=0, default=0, help_text="0 or absent: 25; more than 100 is capped at 100"
    )
    token = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=500,
        help_text="pagination.nextToken of the page before",
    )


class PaginationSerializer(serializers.Serializer):
    nextToken = serializers.CharField(help_text="token for the next page; empty on the last page")  # noqa: N815


def message_data(message) -> dict:
    """The JSON form of a gitpod.v1 message, as the Connect JSON codec writes it, except that fields
    at their default value are written too (REST clients then always see every field): exactly
    `MessageToDict(message, always_print_fields_with_no_presence=True)`.

    protobuf's MessageToDict is generic pure Python and cost more than the rest of a 25-item list
    request; this walks a plan made once per message type instead. Kinds the plan does not cover
    (repeated, maps, floats, bytes, other well-known types) go to MessageToDict, and a test holds
    the two equal on real prebuilds and pools."""
    plan = _json_plan(message.DESCRIPTOR)
    if plan is None:
        return MessageToDict(message, always_print_fields_with_no_presence=True)
    data = {}
    for name, json_name, kind, has_presence, enum_values in plan:
        if has_presence and not message.HasField(name):
            continue
        value = getattr(message, name)
        if kind == "plain":
            data[json_name] = value
        elif kind == "int64":
            data[json_name] = str(value)  # protobuf JSON writes 64-bit integers as strings
        elif kind == "enum":
            data[json_name] = enum_values[value].name if value in enum_values else value
        elif kind == "well-known":
            data[json_name] = value.ToJsonString()
        else:
            data[json_name] = message_data(value)
    return data


_PLAIN_TYPES = {
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BOOL,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED32,
}
_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_WELL_KNOWN = {"google.protobuf.Timestamp", "google.protobuf.Duration"}


@functools.cache
def _json_plan(descriptor):
    """(name, JSON name, kind, has presence, enum values by number) per field; None when a field is
    of a kind message_data leaves to MessageToDict."""
    plan = []
    for field in descriptor.fields:
        enum_values = None
        if field.label == FieldDescriptor.LABEL_REPEATED:
            return None
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name in _WELL_KNOWN:
                kind = "well-known"
            elif field.message_type.full_name.startswith("google.protobuf."):
                return None
            else:
                kind = "message"
        elif field.type == FieldDescriptor.TYPE_ENUM:
            kind, enum_values = "enum", field.enum_type.values_by_number
        elif field.type in _INT64_TYPES:
            kind = "int64"
        elif field.type in _PLAIN_TYPES:
            kind = "plain"
        else:
            return None
        plan.append((field.name, field.json_name, kind, field.has_presence, enum_values))
    return tuple(plan)


def query(serializer_class, request):
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def page_of(queryset, request, name: str, render, params: dict | None = None) -> Response:
    """One page of `queryset` as {name: [...], "pagination": {"nextToken"}}. `params` are the
    request's query parameters when the caller has validated them already (with a serializer
    extending PageQuerySerializer)."""
    params = params if params is not None else query(PageQuerySerializer, request)
    page = paginate(queryset, page_size=params["page_size"], token=params["token"])
    return Response({name: [render(item) for item in page.items], "pagination": {"nextToken": page.next_token}})


ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


# --- environment classes -----------------------------------------------------------------------


class EnvironmentClassSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    displayName = serializers.CharField(source="display_name")  # noqa: N815
    description = serializers.CharField()
    runnerId = serializers.UUIDField(source="runner_id")  # noqa: N815
    organizationId = serializers.UUIDField(source="runner.organization_id")  # noqa: N815
    enabled = serializers.BooleanField()
    cpuCores = serializers.IntegerField(source="cpu_cores")  # noqa: N815
    memoryMb = serializers.IntegerField(source="memory_mb")  # noqa: N815
    diskGb = serializers.IntegerField(source="disk_gb")  # noqa: N815
    allowNetwork = serializers.BooleanField(source="allow_network")  # noqa: N815


@extend_schema_serializer(many=False)  # a page object, not an array
class EnvironmentClassListSerializer(serializers.Serializer):
    environmentClasses = EnvironmentClassSerializer(many=True)  # noqa: N815
    pagination = PaginationSerializer()


class EnvironmentClassViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[PageQuerySerializer], responses=responses({200: EnvironmentClassListSerializer}, 400))
    def list(self, request):
        """Environment classes of the caller's organizations."""
        queryset = EnvironmentClass.objects.filter(runner__organization_id__in=list(request.user.organization_roles))
        return page_of(
            queryset.select_related("runner"),
            request,
            "environmentClasses",
            lambda c: EnvironmentClassSerializer(c).data,
        )


# --- projects ----------------------------------------------------------------------------------


class DailyScheduleSerializer(serializers.Serializer):
    hourUtc = serializers.IntegerField(min_value=0, max_value=23)  # noqa: N815


class TriggerSerializer(serializers.Serializer):
    dailySchedule = DailyScheduleSerializer(required=False, allow_null=True)  # noqa: N815


class ExecutorSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    principal = serializers.ChoiceField(["PRINCIPAL_USER"], required=False, default="PRINCIPAL_USER")


class PrebuildConfigurationSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    environmentClassIds = serializers.ListField(  # noqa: N815
        child=serializers.UUIDField(), required=False, max_length=100, help_text="classes that get prebuilds"
    )
    timeout = DurationField(required=False, help_text="5 minutes to 2 hours; default 3600s")
    trigger = TriggerSerializer(required=False, allow_null=True, help_text="null: no scheduled prebuilds")
    executor = ExecutorSerializer(
        required=False, allow_null=True, help_text="whose credentials clone; null: the creator"
    )
    enableJetbrainsWarmup = serializers.BooleanField(required=False)  # noqa: N815


class ProjectSerializer(serializers.Serializer):
    """Reads and writes a project; `accessToken` (for HTTPS clones) is write-only."""

    id = serializers.UUIDField(read_only=True)
    organizationId = serializers.UUIDField(  # noqa: N815
        required=False, help_text="on create: needed only when you are admin of several organizations"
    )
    name = serializers.CharField(max_length=200)
    repositoryUrl = serializers.CharField(max_length=1000)  # noqa: N815
    branch = serializers.CharField(required=False, max_length=255)
    devcontainerPath = serializers.CharField(required=False, max_length=500)  # noqa: N815
    defaultEnvironmentClassId = serializers.UUIDField(required=False, allow_null=True)  # noqa: N815
    prebuildConfiguration = PrebuildConfigurationSerializer(required=False)  # noqa: N815
    webhookUrl = serializers.CharField(required=False, allow_blank=True, max_length=1000)  # noqa: N815
    accessToken = serializers.CharField(  # noqa: N815
        required=False, allow_blank=True, max_length=500, write_only=True, style={"input_type": "password"}
    )

    def to_representation(self, project: Project):
        hour = project.daily_schedule_hour_utc
        return {
            "id": str(project.id),
            "organizationId": str(project.organization_id),
            "name": project.name,
            "repositoryUrl": project.repository_url,
            "branch": project.branch,
            "devcontainerPath": project.devcontainer_path,
            "defaultEnvironmentClassId": (
                str(project.default_environment_class_id) if project.default_environment_class_id else None
            ),
            "prebuildConfiguration": {
                "enabled": project.prebuilds_enabled,
                "environmentClassIds": sorted(str(c.id) for c in project.prebuild_environment_classes.all()),
                "timeout": duration(project.prebuild_timeout).ToJsonString(),
                "trigger": {"dailySchedule": {"hourUtc": hour}} if hour is not None else None,
                "executor": (
                    {"id": str(project.executor_id), "principal": "PRINCIPAL_USER"} if project.executor_id else None
                ),
                "enableJetbrainsWarmup": project.enable_jetbrains_warmup,
            },
            "webhookUrl": project.webhook_url,
        }


class ProjectCreatedSerializer(ProjectSerializer):
    """The project as created, plus its webhook secret: shown in this response only."""

    webhookSecret = serializers.CharField(  # noqa: N815
        read_only=True,
        help_text="signs webhook bodies (X-Prebuild-Signature-256: sha256=HMAC-SHA256 of the body); "
        "returned only here and by rotate-webhook-secret",
    )


class WebhookSecretSerializer(serializers.Serializer):
    webhookSecret = serializers.CharField(help_text="the new secret; the old one no longer signs")  # noqa: N815


@extend_schema_serializer(many=False)  # a page object, not an array
class ProjectListSerializer(serializers.Serializer):
    projects = ProjectSerializer(many=True)
    pagination = PaginationSerializer()


def _environment_class(class_id, field: str):
    environment_class = EnvironmentClass.objects.select_related("runner").filter(pk=class_id).first()
    if environment_class is None:
        raise InvalidArgument(f"environment class {class_id} not found", field=field)
    return environment_class


def project_fields(data: dict) -> dict:
    """Validated request data as project_create / project_update keyword arguments (only the keys
    the request carried, so an update leaves the others alone). Ids become objects; the services
    check they belong to the project's organization."""
    renames = {
        "name": "name",
        "repositoryUrl": "repository_url",
        "branch": "branch",
        "devcontainerPath": "devcontainer_path",
        "webhookUrl": "webhook_url",
        "accessToken": "access_token",
    }
    fields = {renames[key]: value for key, value in data.items() if key in renames}
    if "defaultEnvironmentClassId" in data:
        class_id = data["defaultEnvironmentClassId"]
        fields["default_environment_class"] = (
            _environment_class(class_id, "default_environment_class_id") if class_id else None
        )
    config = data.get("prebuildConfiguration", {})
    if "enabled" in config:
        fields["prebuilds_enabled"] = config["enabled"]
    if "timeout" in config:
        fields["prebuild_timeout"] = config["timeout"]
    if "enableJetbrainsWarmup" in config:
        fields["enable_jetbrains_warmup"] = config["enableJetbrainsWarmup"]
    if "trigger" in config:
        schedule = (config["trigger"] or {}).get("dailySchedule")
        fields["daily_schedule_hour_utc"] = schedule["hourUtc"] if schedule else None
    if "executor" in config:
        executor = config["executor"]
        user = get_user_model().objects.filter(pk=executor["id"]).first() if executor else None
        if executor and user is None:
            raise InvalidArgument("executor not found", field="prebuild_configuration.executor")
        fields["executor"] = user
    if "environmentClassIds" in config:
        ids = set(config["environmentClassIds"])
        classes = list(EnvironmentClass.objects.select_related("runner").filter(pk__in=ids))
        if len(classes) != len(ids):
            raise InvalidArgument(
                "an environment class was not found", field="prebuild_configuration.environment_class_ids"
            )
        fields["prebuild_environment_classes"] = classes
    return fields


def _organization_for_create(user, organization_id) -> Organization:
    if organization_id:
        organization = Organization.objects.filter(pk=organization_id).first()
        if organization is None:
            raise NotFound(f"organization {organization_id} not found", field="organization_id")
        return organization  # the service checks the caller is one of its admins
    organizations = list(Organization.objects.filter(pk__in=list(user.organization_roles))[:2])
    if len(organizations) != 1:
        raise InvalidArgument(
            "organization_id is required: you belong to several organizations (or none)", field="organization_id"
        )
    return organizations[0]


def _projects():
    return Project.objects.alive().prefetch_related("prebuild_environment_classes")


class ProjectViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[PageQuerySerializer], responses=responses({200: ProjectListSerializer}, 400))
    def list(self, request):
        """Projects of the caller's organizations, newest first."""
        return page_of(_projects().visible_to(request.user), request, "projects", lambda p: ProjectSerializer(p).data)

    @extend_schema(
        request=ProjectSerializer,
        responses=responses({201: ProjectCreatedSerializer}, 400, 403, 404, conflict=True),
    )
    def create(self, request):
        """Create a project (organization admins). The answer carries the project's webhook secret,
        once: no other read returns it (rotate-webhook-secret makes a new one)."""
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = _organization_for_create(request.user, serializer.validated_data.get("organizationId"))
        fields = project_fields(serializer.validated_data)
        project = services.project_create(actor=request.user, organization=organization, **fields)
        data = ProjectSerializer(_projects().get(pk=project.pk)).data
        data["webhookSecret"] = services.webhook_secret(project)
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @extend_schema(
        parameters=[ID_PARAMETER], request=None, responses=responses({200: WebhookSecretSerializer}, 403, 404)
    )
    @action(detail=True, methods=["post"], url_path="rotate-webhook-secret")
    def rotate_webhook_secret(self, request, pk=None):
        """A new webhook secret for the project (organization admins), returned once."""
        project = services.project_get(user=request.user, project_id=pk)
        secret = services.project_rotate_webhook_secret(actor=request.user, project=project)
        return Response({"webhookSecret": secret}, headers={"Cache-Control": "no-store"})

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({200: ProjectSerializer}, 404))
    def retrieve(self, request, pk=None):
        project = services.project_get(user=request.user, project_id=pk)
        return Response(ProjectSerializer(_projects().get(pk=project.pk)).data)

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=ProjectSerializer,
        responses=responses({200: ProjectSerializer}, 400, 403, 404, conflict=True),
    )
    def update(self, request, pk=None):
        """Replace the project's fields (organization admins); absent optional fields keep their value."""
        return self._update(request, pk, partial=False)

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=ProjectSerializer(partial=True),
        responses=responses({200: ProjectSerializer}, 400, 403, 404, conflict=True),
    )
    def partial_update(self, request, pk=None):
        """Change some of the project's fields (organization admins)."""
        return self._update(request, pk, partial=True)

    def _update(self, request, pk, *, partial):
        project = services.project_get(user=request.user, project_id=pk)
        serializer = ProjectSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        project = services.project_update(
            actor=request.user, project=project, **project_fields(serializer.validated_data)
        )
        return Response(ProjectSerializer(_projects().get(pk=project.pk)).data)

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({204: None}, 403, 404))
    def destroy(self, request, pk=None):
        """Delete the project (organization admins); its warm pools go with it."""
        project = services.project_get(user=request.user, project_id=pk)
        services.project_delete(actor=request.user, project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)
