"""REST API for prebuilds. A prebuild reads as the JSON form of gitpod.v1.Prebuild (prebuilds/proto.py),
exactly what the Connect API's JSON codec sends (fields at their default value left out); the
serializers below describe that shape for the OpenAPI schema and parse request bodies for their
types. Each request becomes the gitpod.v1 request message of its method (CreatePrebuildRequest,
ListPrebuildsRequest), checked by the descriptor's rules (core.validation) as the Connect API checks
its own, and read by the same conversions."""

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
    DurationMessageField,
    IdField,
    PageQuerySerializer,
    PaginationSerializer,
    drf_field,
    message_data,
    page_response,
    pagination_of,
    query,
    responses,
    serializer_class,
)
from core.validation import validate
from prebuilds import services
from prebuilds.proto import (
    ALL_PHASE_NAMES,
    ALL_TRIGGER_NAMES,
    create_prebuild_arguments,
    prebuild_message,
    prebuild_page,
)
from prebuilds.shapes import CREATE_PREBUILD, PREBUILD_FILTER
from projects import services as project_services

# --- the shape of a prebuild (documentation of what message_data(prebuild_message(...)) writes) --

UINT64 = {"help_text": "a 64-bit integer, written as a string as in protobuf JSON"}
# protobuf JSON leaves out a field at its default value (0, "", false, UNSPECIFIED), as the Connect
# JSON codec does: such fields are not required in the documented shape.
OMITTED = "left out while at its default value"


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
        ALL_PHASE_NAMES, required=False, help_text=f"CANCELLED or DELETED once asked for; {OMITTED} (UNSPECIFIED)"
    )
    timeout = DurationField()


class PrebuildStatusSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(ALL_PHASE_NAMES)
    completionTime = serializers.DateTimeField(required=False)  # noqa: N815
    failureMessage = serializers.CharField(required=False, help_text=OMITTED)  # noqa: N815
    logUrl = serializers.CharField(required=False, help_text="absent until the runner sets it")  # noqa: N815
    environmentId = serializers.CharField(  # noqa: N815
        required=False, help_text="the environment that built the prebuild; absent when none did (bubblewrap runner)"
    )
    statusVersion = Int64Field(**UINT64)  # noqa: N815
    warningMessage = serializers.CharField(required=False, help_text=OMITTED)  # noqa: N815
    snapshotCompletionPercentage = serializers.IntegerField(  # noqa: N815
        min_value=0, max_value=100, required=False, help_text=f"while SNAPSHOTTING; {OMITTED} (0)"
    )
    snapshotSizeBytes = Int64Field(required=False, help_text=f"{UINT64['help_text']}; once COMPLETED")  # noqa: N815


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


C, F = CREATE_PREBUILD, PREBUILD_FILTER  # the declared fields: names, REST keys, help

CreateSpecSerializer = serializer_class(
    "CreateSpecSerializer",
    drf_field(C.timeout, DurationMessageField, required=False, allow_null=True),
    __module__=__name__,
)

CreatePrebuildSerializer = serializer_class(
    "CreatePrebuildSerializer",
    drf_field(C.project_id, IdField, required=False),
    drf_field(C.environment_class_id, IdField, required=False, allow_null=True),
    ("spec", CreateSpecSerializer(required=False, allow_null=True, help_text="required, {} for the defaults")),
    __doc__="""CreatePrebuildRequest in its JSON form; its rules are the descriptor's.""",
    __module__=__name__,
)


def _list(field, child):
    return drf_field(field, serializers.ListField, child=child, required=False)


PrebuildFilterSerializer = serializer_class(
    "PrebuildFilterSerializer",
    _list(F.project_ids, IdField()),
    _list(F.phases, serializers.ChoiceField(ALL_PHASE_NAMES)),
    _list(F.triggered_by, serializers.ChoiceField(ALL_TRIGGER_NAMES)),
    _list(F.creator_ids, IdField()),
    _list(F.executor_ids, IdField()),
    base=PageQuerySerializer,
    __doc__="""ListPrebuilds' filter as query parameters; repeat one to give several values.""",
    __module__=__name__,
)


def create_request(data: dict) -> pb.CreatePrebuildRequest:
    """The CreatePrebuildRequest of a REST body (parsed by CreatePrebuildSerializer): what is absent
    or null stays unset, as in the Connect JSON form."""
    create = pb.CreatePrebuildRequest(project_id=data.get("projectId", ""))
    if data.get("environmentClassId") is not None:
        create.environment_class_id = data["environmentClassId"]
    spec = data.get("spec")
    if spec is not None:
        create.spec.SetInParent()
        if spec.get("timeout") is not None:
            create.spec.timeout.CopyFrom(spec["timeout"])
    return create


def list_request(params: dict) -> pb.ListPrebuildsRequest:
    """The ListPrebuildsRequest of the REST query (parsed by PrebuildFilterSerializer); phases and
    triggers come as their wire names."""
    given = F.from_rest(params)
    given["phases"] = [pb.PrebuildPhase.Value(name) for name in given.get("phases", [])]
    given["triggered_by"] = [pb.PrebuildMetadata.PrebuildTrigger.Value(name) for name in given.get("triggered_by", [])]
    return pb.ListPrebuildsRequest(pagination=pagination_of(params), filter=pb.ListPrebuildsRequest.Filter(**given))


class LogsTokenSerializer(serializers.Serializer):
    accessToken = serializers.CharField(help_text="reads this prebuild's logs for one hour")  # noqa: N815


# --- endpoints ---------------------------------------------------------------------------------


class PrebuildViewSet(viewsets.ViewSet):
    @extend_schema(parameters=[PrebuildFilterSerializer], responses=responses({200: PrebuildListSerializer}, 400))
    def list(self, request):
        """Prebuilds of the caller's organizations, newest first, filtered and paged as ListPrebuilds."""
        list_prebuilds = list_request(query(PrebuildFilterSerializer, request))
        validate(list_prebuilds)
        return page_response(prebuild_page(request.user, list_prebuilds), "prebuilds", prebuild_data)

    @extend_schema(request=CreatePrebuildSerializer, responses=responses({201: PrebuildSerializer}, 400, 403, 404))
    def create(self, request):
        """Start a prebuild of a project (members)."""
        serializer = CreatePrebuildSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        create = create_request(serializer.validated_data)
        validate(create)
        arguments = create_prebuild_arguments(create)
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
