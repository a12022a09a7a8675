"""REST API for prebuilds. A prebuild reads as the JSON form of gitpod.v1.Prebuild (prebuilds/proto.py),
field for field what the Connect API's JSON codec sends; the serializers below describe that shape
for the OpenAPI schema and parse request bodies."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.identity_pb2 import Principal
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.rest import (
    ID_PARAMETER,
    DurationField,
    PageQuerySerializer,
    PaginationSerializer,
    drf_field,
    message_data,
    page_of,
    query,
    responses,
    serializer_class,
)
from prebuilds import services
from prebuilds.proto import ALL_PHASE_NAMES, PHASE_NAMES, TRIGGER_NAMES, prebuild_message, wire_rows
from prebuilds.queries import PrebuildFilter, prebuilds_for
from prebuilds.shapes import CREATE_PREBUILD, PREBUILD_FILTER
from projects import services as project_services

# --- the shape of a prebuild (documentation of what message_data(prebuild_message(...)) writes) --

UINT64 = {"help_text": "a 64-bit integer, written as a string as in protobuf JSON"}


class Int64Field(serializers.CharField):
    """protobuf JSON writes 64-bit integers as strings."""


class SubjectSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    principal = serializers.ChoiceField(Principal.keys())


class PrebuildMetadataSerializer(serializers.Serializer):
    organizationId = serializers.UUIDField()  # noqa: N815
    projectId = serializers.UUIDField()  # noqa: N815
    environmentClassId = serializers.UUIDField()  # noqa: N815
    creator = SubjectSerializer(required=False)
    createdAt = serializers.DateTimeField()  # noqa: N815
    updatedAt = serializers.DateTimeField()  # noqa: N815
    triggeredBy = serializers.ChoiceField(pb.PrebuildMetadata.PrebuildTrigger.keys())  # noqa: N815
    executor = SubjectSerializer(required=False, help_text="whose credentials clone the repository")


class PrebuildSpecSerializer(serializers.Serializer):
    specVersion = Int64Field(**UINT64)  # noqa: N815
    desiredPhase = serializers.ChoiceField(  # noqa: N815
        ALL_PHASE_NAMES, help_text="CANCELLED or DELETED once asked for; UNSPECIFIED otherwise"
    )
    timeout = DurationField()


class PrebuildStatusSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(ALL_PHASE_NAMES)
    completionTime = serializers.DateTimeField(required=False)  # noqa: N815
    failureMessage = serializers.CharField(allow_blank=True)  # noqa: N815
    logUrl = serializers.CharField(allow_blank=True, help_text="empty until the runner sets it")  # noqa: N815
    environmentId = serializers.CharField(allow_blank=True)  # noqa: N815
    statusVersion = Int64Field(**UINT64)  # noqa: N815
    warningMessage = serializers.CharField(allow_blank=True)  # noqa: N815
    snapshotCompletionPercentage = serializers.IntegerField(min_value=0, max_value=100)  # noqa: N815
    snapshotSizeBytes = Int64Field(**UINT64)  # noqa: N815


class PrebuildSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    metadata = PrebuildMetadataSerializer()
    spec = PrebuildSpecSerializer()
    status = PrebuildStatusSerializer()


@extend_schema_serializer(many=False)  # a page object, not an array
class PrebuildListSerializer(serializers.Serializer):
    prebuilds = PrebuildSerializer(many=True)
    pagination = PaginationSerializer()


def prebuild_data(prebuild) -> dict:
    return message_data(prebuild_message(prebuild))


# --- requests ----------------------------------------------------------------------------------


C, F = CREATE_PREBUILD, PREBUILD_FILTER  # the declared fields: names, REST keys, limits, help

CreateSpecSerializer = serializer_class(
    "CreateSpecSerializer", drf_field(C.timeout, DurationField, required=False), __module__=__name__
)

CreatePrebuildSerializer = serializer_class(
    "CreatePrebuildSerializer",
    drf_field(C.project_id, serializers.UUIDField),
    drf_field(C.environment_class_id, serializers.UUIDField, required=False),
    ("spec", CreateSpecSerializer(required=False)),
    __module__=__name__,
)


def _list(field, child):
    return drf_field(field, serializers.ListField, child=child, required=False)


PrebuildFilterSerializer = serializer_class(
    "PrebuildFilterSerializer",
    _list(F.project_ids, serializers.UUIDField()),
    _list(F.phases, serializers.ChoiceField(PHASE_NAMES)),
    _list(F.triggered_by, serializers.ChoiceField(TRIGGER_NAMES)),
    _list(F.creator_ids, serializers.UUIDField()),
    _list(F.executor_ids, serializers.UUIDField()),
    base=PageQuerySerializer,
    __doc__="""ListPrebuilds' filter as query parameters; repeat one to give several values.""",
    __module__=__name__,
)


class LogsTokenSerializer(serializers.Serializer):
    accessToken = serializers.CharField(help_text="reads this prebuild's logs for one hour")  # noqa: N815


# --- endpoints ---------------------------------------------------------------------------------


class PrebuildViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[PrebuildFilterSerializer], responses=responses({200: PrebuildListSerializer}, 400))
    def list(self, request):
        """Prebuilds of the caller's organizations, newest first, filtered and paged as ListPrebuilds."""
        params = query(PrebuildFilterSerializer, request)
        given = F.from_rest(params)
        # Phases and triggers come as their wire names.
        given["phases"] = [pb.PrebuildPhase.Value(name) for name in given.get("phases", [])]
        given["triggered_by"] = [
            pb.PrebuildMetadata.PrebuildTrigger.Value(name) for name in given.get("triggered_by", [])
        ]
        filters = PrebuildFilter(**given)
        return page_of(wire_rows(prebuilds_for(request.user, filters)), request, "prebuilds", prebuild_data, params)

    @extend_schema(request=CreatePrebuildSerializer, responses=responses({201: PrebuildSerializer}, 400, 403, 404))
    def create(self, request):
        """Start a prebuild of a project (members)."""
        serializer = CreatePrebuildSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        arguments = C.from_rest(serializer.validated_data)
        project = project_services.project_get(user=request.user, project_id=arguments.pop("project_id"))
        prebuild = services.prebuild_create(actor=request.user, project=project, **arguments)
        return Response(prebuild_data(prebuild), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[ID_PARAMETER], responses=responses({200: PrebuildSerializer}, 404))
    def retrieve(self, request, pk=None):
        return Response(prebuild_data(services.prebuild_get(user=request.user, prebuild_id=pk)))

    @extend_schema(
        parameters=[ID_PARAMETER],
        request=None,
        responses=responses({200: PrebuildSerializer}, 403, 404, conflict=True),
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Ask for cancellation (members); harmless on a finished prebuild."""
        prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
        return Response(prebuild_data(services.prebuild_cancel(actor=request.user, prebuild=prebuild)))

    @extend_schema(
        parameters=[ID_PARAMETER],
        responses=responses({204: OpenApiResponse(description="marked for deletion")}, 403, 404, conflict=True),
    )
    def destroy(self, request, pk=None):
        """Delete (organization admins): marked at once, removed in the background."""
        prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
        services.prebuild_delete(actor=request.user, prebuild=prebuild)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="prebuilds_logs_token_create",
        parameters=[ID_PARAMETER],
        request=None,
        responses=responses({200: LogsTokenSerializer}, 403, 404),
    )
    @action(detail=True, methods=["post"], url_path="logs-token")
    def logs_token(self, request, pk=None):
        """A token that reads this prebuild's logs, live or archived, for one hour (members)."""
        prebuild = services.prebuild_get(user=request.user, prebuild_id=pk)
        token = services.prebuild_create_logs_token(actor=request.user, prebuild=prebuild)
        return Response({"accessToken": token})
