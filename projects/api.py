"""REST API for projects and environment classes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
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
    page_of,
    responses,
)
from projects import services
from projects.models import EnvironmentClass, Organization, Project

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
