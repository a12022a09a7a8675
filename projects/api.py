"""REST API for projects and environment classes."""

from __future__ import annotations

from drf_spectacular.utils import (
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.errors import InvalidArgument, NotFound
from core.proto import duration
from core.rest import (
    ID_PARAMETER,
    DurationField,
    PageQuerySerializer,
    PaginationSerializer,
    drf_field,
    page_of,
    query,
    responses,
    serializer_class,
)
from projects import services
from projects.models import EnvironmentClass, Organization, Project, SecretScope
from projects.shapes import PROJECT

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


F = PROJECT  # the declared fields: names, REST keys, limits and help texts


DailyScheduleSerializer = serializer_class(
    "DailyScheduleSerializer", drf_field(F.daily_schedule_hour_utc, serializers.IntegerField), __module__=__name__
)


class TriggerSerializer(serializers.Serializer):
    dailySchedule = DailyScheduleSerializer(required=False, allow_null=True)  # noqa: N815


class ExecutorSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    principal = serializers.ChoiceField(["PRINCIPAL_USER"], required=False, default="PRINCIPAL_USER")


PrebuildConfigurationSerializer = serializer_class(
    "PrebuildConfigurationSerializer",
    drf_field(F.prebuilds_enabled, serializers.BooleanField, required=False),
    drf_field(F.prebuild_environment_class_ids, serializers.ListField, child=serializers.UUIDField(), required=False),
    drf_field(F.prebuild_timeout, DurationField, required=False),
    ("trigger", TriggerSerializer(required=False, allow_null=True, help_text="null: no scheduled prebuilds")),
    drf_field(F.executor_id, ExecutorSerializer, required=False, allow_null=True),
    drf_field(F.enable_jetbrains_warmup, serializers.BooleanField, required=False),
    __module__=__name__,
)


def _project_representation(serializer, project: Project) -> dict:
    """ProjectSerializer.to_representation: the read shape, keys as declared."""
    hour = project.daily_schedule_hour_utc
    default_class_id = project.default_environment_class_id
    return {
        "id": str(project.id),
        F.organization_id.key: str(project.organization_id),
        F.name.key: project.name,
        F.repository_url.key: project.repository_url,
        F.branch.key: project.branch,
        F.devcontainer_path.key: project.devcontainer_path,
        F.default_environment_class_id.key: str(default_class_id) if default_class_id else None,
        "prebuildConfiguration": {
            F.prebuilds_enabled.key: project.prebuilds_enabled,
            F.prebuild_environment_class_ids.key: sorted(str(c.id) for c in project.prebuild_environment_classes.all()),
            F.prebuild_timeout.key: duration(project.prebuild_timeout).ToJsonString(),
            "trigger": {"dailySchedule": {F.daily_schedule_hour_utc.key: hour}} if hour is not None else None,
            F.executor_id.key: (
                {"id": str(project.executor_id), "principal": "PRINCIPAL_USER"} if project.executor_id else None
            ),
            F.enable_jetbrains_warmup.key: project.enable_jetbrains_warmup,
        },
        F.webhook_url.key: project.webhook_url,
    }


ProjectSerializer = serializer_class(
    "ProjectSerializer",
    ("id", serializers.UUIDField(read_only=True)),
    drf_field(F.organization_id, serializers.UUIDField, required=False),
    drf_field(F.name, serializers.CharField),
    drf_field(F.repository_url, serializers.CharField),
    drf_field(F.branch, serializers.CharField, required=False),
    drf_field(F.devcontainer_path, serializers.CharField, required=False),
    drf_field(F.default_environment_class_id, serializers.UUIDField, required=False, allow_null=True),
    ("prebuildConfiguration", PrebuildConfigurationSerializer(required=False)),
    drf_field(F.webhook_url, serializers.CharField, required=False, allow_blank=True),
    drf_field(
        F.access_token,
        serializers.CharField,
        required=False,
        allow_blank=True,
        write_only=True,
        style={"input_type": "password"},
    ),
    __doc__="""Reads and writes a project; `accessToken` (for HTTPS clones) is write-only.""",
    __module__=__name__,
    to_representation=_project_representation,
)


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


def project_arguments(data: dict) -> dict:
    """Validated request data as project_create / project_update keyword arguments: only the fields
    the request carried, so an update leaves the others alone. Ids stay ids: the services look
    them up and check they belong to the project's organization."""
    arguments = F.from_rest(data)
    arguments.pop("organization_id", None)  # the project's place, chosen by _organization_for_create
    config = data.get("prebuildConfiguration", {})
    # Two fields are objects on the wire: the schedule (its trigger, null or without a daily
    # schedule, means none) and the executor (a Subject, of which the id is what counts).
    arguments.pop("daily_schedule_hour_utc", None)
    if "trigger" in config:
        schedule = (config["trigger"] or {}).get("dailySchedule")
        arguments["daily_schedule_hour_utc"] = schedule[F.daily_schedule_hour_utc.key] if schedule else None
    if "executor_id" in arguments:
        arguments["executor_id"] = arguments["executor_id"]["id"] if arguments["executor_id"] else None
    return arguments


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
        organization_id = serializer.validated_data.get(F.organization_id.key)
        organization = _organization_for_create(request.user, organization_id)
        arguments = project_arguments(serializer.validated_data)
        project = services.project_create(actor=request.user, organization=organization, **arguments)
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
            actor=request.user, project=project, **project_arguments(serializer.validated_data)
        )
        return Response(ProjectSerializer(_projects().get(pk=project.pk)).data)

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({204: None}, 403, 404))
    def destroy(self, request, pk=None):
        """Delete the project (organization admins); its warm pools go with it."""
        project = services.project_get(user=request.user, project_id=pk)
        services.project_delete(actor=request.user, project=project)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- secrets -----------------------------------------------------------------------------------
# /api/v1/secrets/: an organization's (organizationId) or a project's (projectId) secrets. Values
# are write-only: a request carries one, no response ever does.


class SecretSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    organizationId = serializers.UUIDField(source="organization_id", required=False)  # noqa: N815
    projectId = serializers.UUIDField(source="project_id", required=False, allow_null=True)  # noqa: N815
    name = serializers.CharField(max_length=128, help_text="an environment variable name, e.g. NPM_TOKEN")
    value = serializers.CharField(
        write_only=True, trim_whitespace=False, help_text="write-only: never returned by any request"
    )
    scope = serializers.ChoiceField(choices=SecretScope.values, default=SecretScope.BOTH)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)  # noqa: N815


class SecretQuerySerializer(PageQuerySerializer):
    organizationId = serializers.UUIDField(required=False)  # noqa: N815
    projectId = serializers.UUIDField(required=False)  # noqa: N815


@extend_schema_serializer(many=False)  # a page object, not an array
class SecretListSerializer(serializers.Serializer):
    secrets = SecretSerializer(many=True)
    pagination = PaginationSerializer()


def _secret_owner(user, organization_id, project_id) -> dict:
    """The services' owner argument: the project when one is named, else the organization."""
    if project_id:
        return {"project": services.project_get(user=user, project_id=project_id)}
    if not organization_id:
        raise InvalidArgument("organizationId or projectId is required", field="organizationId")
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise NotFound(f"organization {organization_id} not found", field="organizationId")
    return {"organization": organization}  # the services check the caller is a member


class SecretViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[SecretQuerySerializer], responses=responses({200: SecretListSerializer}, 400, 404))
    def list(self, request):
        """Names and scopes of an organization's or a project's secrets (members); never values."""
        params = query(SecretQuerySerializer, request)  # malformed ids are a 400, not a 500
        owner = _secret_owner(request.user, params.get("organizationId"), params.get("projectId"))
        rows = services.secrets_list(user=request.user, **owner)
        return page_of(rows, request, "secrets", lambda s: SecretSerializer(s).data, serializer=SecretQuerySerializer)

    @extend_schema(request=SecretSerializer, responses=responses({201: SecretSerializer}, 400, 403, 404))
    def create(self, request):
        """Add a secret, or replace the value and scope of the one of that name (organization admins).
        The answer names the secret; it does not carry the value."""
        serializer = SecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        owner = _secret_owner(request.user, data.get("organization_id"), data.get("project_id"))
        secret = services.secret_set(
            actor=request.user, name=data["name"], value=data["value"], scope=data["scope"], **owner
        )
        return Response(SecretSerializer(secret).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({204: None}, 403, 404))
    def destroy(self, request, pk=None):
        """Delete a secret (organization admins)."""
        secret = services.secret_get_any(user=request.user, secret_id=pk)
        services.secret_delete(actor=request.user, secret=secret)
        return Response(status=status.HTTP_204_NO_CONTENT)
