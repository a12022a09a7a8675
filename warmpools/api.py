"""REST API for warm pools. A pool reads as the JSON form of gitpod.v1.WarmPool (warmpools/proto.py),
exactly what the Connect API's JSON codec sends (fields at their default value left out). Each pool
request becomes the gitpod.v1 request message of its method (Create/Update/ListWarmPools), checked
by the descriptor's rules (core.validation) as the Connect API checks its own."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from gitpod.v1 import prebuild_pb2 as pb
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.paths import redact_paths
from core.rest import (
    ID_PARAMETER,
    IdField,
    Int32Field,
    PageQuerySerializer,
    PaginationSerializer,
    drf_field,
    message_data,
    page_of,
    page_response,
    pagination_of,
    query,
    responses,
    serializer_class,
)
from core.validation import validate
from prebuilds.api import OMITTED, UINT64, Int64Field
from projects import services as project_services
from warmpools import services
from warmpools.proto import ALL_PHASE_NAMES, size_arguments, warm_pool_message, warm_pool_page, with_sizes
from warmpools.queries import environments_for
from warmpools.shapes import CREATE_ENVIRONMENT, ENVIRONMENT_FILTER, WARM_POOL, WARM_POOL_FILTER, exec_request

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
    desiredSize = serializers.IntegerField(  # noqa: N815
        required=False, help_text=f"deprecated: min = max = desiredSize; {OMITTED} (0: not given)"
    )
    snapshotId = serializers.UUIDField(  # noqa: N815
        required=False, help_text="the prebuild whose snapshot is warmed; absent until one completed"
    )
    desiredPhase = serializers.ChoiceField(  # noqa: N815
        ALL_PHASE_NAMES, required=False, help_text=f"DELETED once asked for; {OMITTED} (UNSPECIFIED)"
    )
    minSize = serializers.IntegerField(help_text="written even when 0: the field has presence")  # noqa: N815
    maxSize = serializers.IntegerField()  # noqa: N815


class WarmPoolStatusSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(ALL_PHASE_NAMES)
    failureMessage = serializers.CharField(required=False, help_text=OMITTED)  # noqa: N815
    statusVersion = Int64Field(**UINT64)  # noqa: N815
    runningInstances = serializers.IntegerField(required=False, help_text=f"ready to be claimed; {OMITTED}")  # noqa: N815
    stoppedInstances = serializers.IntegerField(  # noqa: N815
        required=False, help_text=f"provisioned but stopped; {OMITTED}"
    )
    desiredSize = serializers.IntegerField(  # noqa: N815
        required=False, help_text=f"the autoscaler's current target; {OMITTED}"
    )


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


W = WARM_POOL  # the declared fields: names, REST keys and help texts


def _size(field):
    # Integers only: the ranges are the descriptor's, checked on the request message.
    return drf_field(field, Int32Field, required=False, allow_null=True)


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
    drf_field(W.project_id, IdField, required=False),
    drf_field(W.environment_class_id, IdField, required=False),
    base=SizesSerializer,
    __module__=__name__,
)


def _ids(field, child=IdField):
    return drf_field(field, serializers.ListField, child=child(), required=False)


WarmPoolFilterSerializer = serializer_class(
    "WarmPoolFilterSerializer",
    _ids(WARM_POOL_FILTER.project_ids),
    _ids(WARM_POOL_FILTER.environment_class_ids),
    base=PageQuerySerializer,
    __module__=__name__,
)


def _sizes(data: dict) -> dict:
    """The sizes a REST body gives (absent or null: not given), by their service names."""
    return {
        name: value for name, value in W.from_rest(data).items() if name in ("min_size", "max_size", "desired_size")
    }


# --- endpoints ---------------------------------------------------------------------------------


class WarmPoolViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[WarmPoolFilterSerializer], responses=responses({200: WarmPoolListSerializer}, 400))
    def list(self, request):
        """Warm pools of the caller's organizations, newest first, filtered and paged as ListWarmPools."""
        params = query(WarmPoolFilterSerializer, request)
        list_pools = pb.ListWarmPoolsRequest(
            pagination=pagination_of(params),
            filter=pb.ListWarmPoolsRequest.Filter(**WARM_POOL_FILTER.from_rest(params)),
        )
        validate(list_pools)
        return page_response(warm_pool_page(request.user, list_pools), "warmPools", warm_pool_data)

    @extend_schema(
        request=CreateWarmPoolSerializer,
        responses=responses({201: WarmPoolSerializer}, 400, 403, 404, conflict=True),
    )
    def create(self, request):
        """Create the pool of a project and class (organization admins)."""
        serializer = CreateWarmPoolSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        create = with_sizes(
            pb.CreateWarmPoolRequest(
                project_id=data.get("projectId", ""), environment_class_id=data.get("environmentClassId", "")
            ),
            **_sizes(data),
        )
        validate(create)
        project = project_services.project_get(user=request.user, project_id=create.project_id)
        pool = services.warm_pool_create(
            actor=request.user,
            project=project,
            environment_class_id=create.environment_class_id,
            **size_arguments(create),
        )
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
        update = with_sizes(pb.UpdateWarmPoolRequest(warm_pool_id=str(pool.id)), **_sizes(serializer.validated_data))
        validate(update)
        pool = services.warm_pool_update(actor=request.user, pool=pool, **size_arguments(update))
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
    "EnvironmentFilterSerializer",
    _ids(ENVIRONMENT_FILTER.project_ids, serializers.UUIDField),
    base=PageQuerySerializer,
    __module__=__name__,
)


def environment_data(environment) -> dict:
    return EnvironmentSerializer(environment).data


class ExecRequestSerializer(serializers.Serializer):
    """Documentation only: warmpools.shapes.exec_request checks the body."""

    command = serializers.ListField(child=serializers.CharField())
    timeoutSeconds = serializers.IntegerField(required=False, help_text="1 to 600, default 60")  # noqa: N815


class ExecResultSerializer(serializers.Serializer):
    exitCode = serializers.IntegerField()  # noqa: N815
    stdout = serializers.CharField()
    stderr = serializers.CharField()
    truncated = serializers.BooleanField()


class EnvironmentViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[EnvironmentFilterSerializer], responses=responses({200: EnvironmentListSerializer}, 400))
    def list(self, request):
        """Environments of the caller's organizations, newest first."""
        params = query(EnvironmentFilterSerializer, request)
        queryset = environments_for(request.user, **ENVIRONMENT_FILTER.from_rest(params))
        return page_of(queryset, request, "environments", environment_data, serializer=EnvironmentFilterSerializer)

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

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=ExecRequestSerializer,
        responses=responses({200: ExecResultSerializer}, 400, 403, 404),
    )
    @action(detail=True, methods=["post"], url_path="exec")
    def exec(self, request, pk=None):
        """Run a command in the environment (its creator and the organization's admins): as the
        devcontainer's remoteUser in its workspace folder; each stream capped."""
        environment = services.environment_get(user=request.user, environment_id=pk)
        command, timeout = exec_request(request.data)
        result = services.environment_exec(
            actor=request.user, environment=environment, command=command, timeout_seconds=timeout
        )
        return Response(
            {
                "exitCode": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "truncated": result.truncated,
            }
        )
