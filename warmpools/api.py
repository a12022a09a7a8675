"""REST API for warm pools. A pool reads as the JSON form of gitpod.v1.WarmPool (warmpools/proto.py),
field for field what the Connect API's JSON codec sends."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.paths import redact_paths
from core.rest import (
    ID_PARAMETER,
    PageQuerySerializer,
    PaginationSerializer,
    drf_field,
    message_data,
    page_of,
    query,
    responses,
    serializer_class,
)
from prebuilds.api import UINT64, Int64Field
from projects import services as project_services
from warmpools import services
from warmpools.proto import ALL_PHASE_NAMES, warm_pool_message
from warmpools.queries import environments_for, warm_pools_for
from warmpools.shapes import CREATE_ENVIRONMENT, ENVIRONMENT_FILTER, WARM_POOL, WARM_POOL_FILTER

# --- the shape of a warm pool ------------------------------------------------------------------


class WarmPoolMetadataSerializer(serializers.Serializer):
    organizationId = serializers.UUIDField()  # noqa: N815
    projectId = serializers.UUIDField()  # noqa: N815
    environmentClassId = serializers.UUIDField()  # noqa: N815
    runnerId = serializers.UUIDField()  # noqa: N815
    createdAt = serializers.DateTimeField()  # noqa: N815
    updatedAt = serializers.DateTimeField()  # noqa: N815


class WarmPoolSpecSerializer(serializers.Serializer):
    specVersion = Int64Field(**UINT64)  # noqa: N815
    desiredSize = serializers.IntegerField(help_text="deprecated: min = max = desiredSize")  # noqa: N815
    snapshotId = serializers.UUIDField(  # noqa: N815
        required=False, help_text="the prebuild whose snapshot is warmed; absent until one completed"
    )
    desiredPhase = serializers.ChoiceField(ALL_PHASE_NAMES)  # noqa: N815
    minSize = serializers.IntegerField()  # noqa: N815
    maxSize = serializers.IntegerField()  # noqa: N815


class WarmPoolStatusSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(ALL_PHASE_NAMES)
    failureMessage = serializers.CharField(allow_blank=True)  # noqa: N815
    statusVersion = Int64Field(**UINT64)  # noqa: N815
    runningInstances = serializers.IntegerField(help_text="ready to be claimed")  # noqa: N815
    stoppedInstances = serializers.IntegerField(help_text="provisioned but stopped")  # noqa: N815
    desiredSize = serializers.IntegerField(help_text="the autoscaler's current target")  # noqa: N815


class WarmPoolSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    metadata = WarmPoolMetadataSerializer()
    spec = WarmPoolSpecSerializer()
    status = WarmPoolStatusSerializer()


@extend_schema_serializer(many=False)  # a page object, not an array
class WarmPoolListSerializer(serializers.Serializer):
    warmPools = WarmPoolSerializer(many=True)  # noqa: N815
    pagination = PaginationSerializer()


def warm_pool_data(pool) -> dict:
    return message_data(warm_pool_message(pool))


# --- requests ----------------------------------------------------------------------------------


W = WARM_POOL  # the declared fields: names, REST keys, limits and help texts


def _size(field):
    # The ranges (warmpools.shapes) are the service's rule, answered in its words as every rule is.
    return drf_field(field, serializers.IntegerField, limits=False, required=False)


SizesSerializer = serializer_class(
    "SizesSerializer",
    _size(W.min_size),
    _size(W.max_size),
    _size(W.desired_size),
    __doc__="""Absent sizes keep their value (0 and 1 on create); desiredSize alone means min = max.""",
    __module__=__name__,
)

CreateWarmPoolSerializer = serializer_class(
    "CreateWarmPoolSerializer",
    drf_field(W.project_id, serializers.UUIDField),
    drf_field(W.environment_class_id, serializers.UUIDField),
    base=SizesSerializer,
    __module__=__name__,
)


def _ids(field):
    return drf_field(field, serializers.ListField, child=serializers.UUIDField(), required=False)


WarmPoolFilterSerializer = serializer_class(
    "WarmPoolFilterSerializer",
    _ids(WARM_POOL_FILTER.project_ids),
    _ids(WARM_POOL_FILTER.environment_class_ids),
    base=PageQuerySerializer,
    __module__=__name__,
)


# --- endpoints ---------------------------------------------------------------------------------


class WarmPoolViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[WarmPoolFilterSerializer], responses=responses({200: WarmPoolListSerializer}, 400))
    def list(self, request):
        """Warm pools of the caller's organizations, newest first, filtered and paged as ListWarmPools."""
        params = query(WarmPoolFilterSerializer, request)
        queryset = warm_pools_for(request.user, **WARM_POOL_FILTER.from_rest(params))
        # The wire form reads ids only: no joins.
        return page_of(queryset.select_related(None), request, "warmPools", warm_pool_data, params)

    @extend_schema(
        request=CreateWarmPoolSerializer,
        responses=responses({201: WarmPoolSerializer}, 400, 403, 404, conflict=True),
    )
    def create(self, request):
        """Create the pool of a project and class (organization admins)."""
        serializer = CreateWarmPoolSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        arguments = W.from_rest(serializer.validated_data)
        project = project_services.project_get(user=request.user, project_id=arguments.pop("project_id"))
        pool = services.warm_pool_create(actor=request.user, project=project, **arguments)
        return Response(warm_pool_data(pool), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({200: WarmPoolSerializer}, 404))
    def retrieve(self, request, pk=None):
        return Response(warm_pool_data(services.warm_pool_get(user=request.user, warm_pool_id=pk)))

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=SizesSerializer,
        responses=responses({200: WarmPoolSerializer}, 400, 403, 404, conflict=True),
    )
    @action(detail=True, methods=["post"])
    def resize(self, request, pk=None):
        """Change the pool's sizes (organization admins), as UpdateWarmPool."""
        pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
        serializer = SizesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pool = services.warm_pool_update(actor=request.user, pool=pool, **W.from_rest(serializer.validated_data))
        return Response(warm_pool_data(pool))

    @extend_schema(
        parameters=[ID_PARAMETER],
        responses=responses({204: OpenApiResponse(description="marked for deletion")}, 403, 404, conflict=True),
    )
    def destroy(self, request, pk=None):
        """Delete (organization admins): marked at once, its instances drained in the background."""
        pool = services.warm_pool_get(user=request.user, warm_pool_id=pk)
        services.warm_pool_delete(actor=request.user, pool=pool)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- environments ------------------------------------------------------------------------------


class RunnerPlaceField(serializers.CharField):
    """A path on the runner, shown as its place: where a runner keeps its tenants' data is not a
    caller's business."""

    def to_representation(self, value):
        return redact_paths(super().to_representation(value))


class EnvironmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    organizationId = serializers.UUIDField(source="organization_id")  # noqa: N815
    projectId = serializers.UUIDField(source="project_id")  # noqa: N815
    environmentClassId = serializers.UUIDField(source="environment_class_id")  # noqa: N815
    creatorId = serializers.UUIDField(source="creator_id", allow_null=True)  # noqa: N815
    source = serializers.ChoiceField(["pool", "snapshot", "cold"], help_text="where the workspace came from")
    phase = serializers.ChoiceField(["creating", "ready", "failed", "deleting", "deleted"])
    warmPoolId = serializers.UUIDField(source="pool_id", allow_null=True)  # noqa: N815
    snapshotId = serializers.UUIDField(  # noqa: N815
        source="snapshot_id", allow_null=True, help_text="the prebuild whose snapshot it started from"
    )
    path = RunnerPlaceField(
        help_text="the workspace's place on the runner (e.g. `<warm pools>/<pool id>/instance-<id>`, never a host "
        "path); empty until ready"
    )
    readyAfterMs = serializers.FloatField(  # noqa: N815
        source="ready_after_ms", allow_null=True, help_text="from the request to a ready workspace"
    )
    failureMessage = serializers.CharField(source="failure_message")  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    readyAt = serializers.DateTimeField(source="ready_at", allow_null=True)  # noqa: N815


@extend_schema_serializer(many=False)  # a page object, not an array
class EnvironmentListSerializer(serializers.Serializer):
    environments = EnvironmentSerializer(many=True)
    pagination = PaginationSerializer()


CreateEnvironmentSerializer = serializer_class(
    "CreateEnvironmentSerializer",
    drf_field(CREATE_ENVIRONMENT.project_id, serializers.UUIDField),
    drf_field(CREATE_ENVIRONMENT.environment_class_id, serializers.UUIDField, required=False),
    __module__=__name__,
)

EnvironmentFilterSerializer = serializer_class(
    "EnvironmentFilterSerializer", _ids(ENVIRONMENT_FILTER.project_ids), base=PageQuerySerializer, __module__=__name__
)


def environment_data(environment) -> dict:
    return EnvironmentSerializer(environment).data


class EnvironmentViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[EnvironmentFilterSerializer], responses=responses({200: EnvironmentListSerializer}, 400))
    def list(self, request):
        """Environments of the caller's organizations, newest first."""
        params = query(EnvironmentFilterSerializer, request)
        queryset = environments_for(request.user, **ENVIRONMENT_FILTER.from_rest(params))
        return page_of(queryset, request, "environments", environment_data)

    @extend_schema(request=CreateEnvironmentSerializer, responses=responses({201: EnvironmentSerializer}, 400, 404))
    def create(self, request):
        """Create an environment (members): from the warm pool when it has a ready instance, else restored
        from the newest snapshot, else built cold. A pool hit is ready in the response; otherwise poll it."""
        serializer = CreateEnvironmentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        arguments = CREATE_ENVIRONMENT.from_rest(serializer.validated_data)
        project = project_services.project_get(user=request.user, project_id=arguments.pop("project_id"))
        environment = services.environment_create(actor=request.user, project=project, **arguments)
        return Response(environment_data(environment), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({200: EnvironmentSerializer}, 404))
    def retrieve(self, request, pk=None):
        return Response(environment_data(services.environment_get(user=request.user, environment_id=pk)))

    @extend_schema(
        parameters=[ID_PARAMETER],
        responses=responses({204: OpenApiResponse(description="marked for deletion")}, 404),
    )
    def destroy(self, request, pk=None):
        """Delete (members): its workspace is removed in the background."""
        environment = services.environment_get(user=request.user, environment_id=pk)
        services.environment_delete(actor=request.user, environment=environment)
        return Response(status=status.HTTP_204_NO_CONTENT)
