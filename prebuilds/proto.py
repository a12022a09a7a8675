"""A prebuild in its wire form, gitpod.v1.Prebuild: the one conversion both APIs use; and the
requests of the prebuild methods as the services' arguments.

The Connect API sends this message; the REST API sends its JSON form (json_format.MessageToDict),
so the two cannot drift apart. Only the prebuild's own columns are read (WIRE_COLUMNS), so
converting a page of prebuilds never touches another table.

Requests go the other way through the same message: Connect receives it, REST and the trigger form
build it from their input; each checks it (core.validation) and reads it here.
"""

from __future__ import annotations

from django.db.models import QuerySet
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.identity_pb2 import Subject

from core.pagination import Page, list_scope, paginate
from core.proto import duration, timestamp
from prebuilds.models import Prebuild
from prebuilds.queries import PrebuildFilter, prebuilds_for
from projects.models import Principal

# The wire names of the enums, for parsing names and for documenting them (REST and OpenAPI).
ALL_PHASE_NAMES = list(pb.PrebuildPhase.keys())
ALL_TRIGGER_NAMES = list(pb.PrebuildMetadata.PrebuildTrigger.keys())


# The columns prebuild_message reads. API lists fetch only these, as named rows: making 25 model
# instances (every column, every datetime parsed) cost more than the rest of a list request.
WIRE_COLUMNS = (
    "id",
    "organization_id",
    "project_id",
    "environment_class_id",
    "creator_id",
    "creator_principal",
    "created_at",
    "updated_at",
    "triggered_by",
    "executor_id",
    "spec_version",
    "desired_phase",
    "timeout",
    "phase",
    "completion_time",
    "failure_message",
    "warning_message",
    "log_url",
    "environment_id",
    "status_version",
    "snapshot_completion_percentage",
    "snapshot_size_bytes",
)


def wire_rows(queryset: QuerySet) -> QuerySet:
    """`queryset` as rows of WIRE_COLUMNS, ready for prebuild_message (no joins: it reads ids only)."""
    return queryset.select_related(None).values_list(*WIRE_COLUMNS, named=True)


def prebuild_message(prebuild: Prebuild) -> pb.Prebuild:
    """The wire form of a prebuild, or of a row of wire_rows()."""
    return pb.Prebuild(
        id=str(prebuild.id),
        metadata=pb.PrebuildMetadata(
            organization_id=str(prebuild.organization_id),
            project_id=str(prebuild.project_id),
            environment_class_id=str(prebuild.environment_class_id),
            creator=(
                Subject(id=str(prebuild.creator_id), principal=prebuild.creator_principal)
                if prebuild.creator_id
                else None
            ),
            created_at=timestamp(prebuild.created_at),
            updated_at=timestamp(prebuild.updated_at),
            triggered_by=prebuild.triggered_by,
            # The executor's credentials clone the repository; the creator when none was set.
            executor=user_subject(prebuild.executor_id or prebuild.creator_id),
        ),
        spec=pb.PrebuildSpec(
            spec_version=prebuild.spec_version,
            desired_phase=prebuild.desired_phase,
            timeout=duration(prebuild.timeout),
        ),
        status=pb.PrebuildStatus(
            phase=prebuild.phase,
            completion_time=timestamp(prebuild.completion_time),
            failure_message=prebuild.failure_message,
            warning_message=prebuild.warning_message,
            log_url=prebuild.log_url,
            environment_id=prebuild.environment_id,
            status_version=prebuild.status_version,
            snapshot_completion_percentage=prebuild.snapshot_completion_percentage or 0,
            snapshot_size_bytes=prebuild.snapshot_size_bytes or 0,
        ),
    )


def user_subject(user_id) -> Subject | None:
    """A user as a gitpod.v1 Subject (principal USER; the id is the user's UUID)."""
    return Subject(id=str(user_id), principal=Principal.USER) if user_id else None


# --- requests ----------------------------------------------------------------------------------


def create_prebuild_arguments(request: pb.CreatePrebuildRequest) -> dict:
    """prebuild_create's arguments (and the project's id) from a checked CreatePrebuildRequest; an
    absent class or timeout is None (the project's default class, the default timeout)."""
    spec = request.spec
    return {
        "project_id": request.project_id,
        "environment_class_id": request.environment_class_id if request.HasField("environment_class_id") else None,
        "timeout": spec.timeout.ToTimedelta() if spec.HasField("timeout") else None,
    }


def prebuild_filter(request: pb.ListPrebuildsRequest) -> PrebuildFilter:
    f = request.filter
    return PrebuildFilter(
        project_ids=list(f.project_ids),
        phases=list(f.phases),
        triggered_by=list(f.triggered_by),
        creator_ids=list(f.creator_ids),
        executor_ids=list(f.executor_ids),
    )


def prebuild_page(user, request: pb.ListPrebuildsRequest) -> Page:
    """A page of ListPrebuilds, for a checked request (Connect's, or the one REST builds); its
    tokens are bound to the method and the filter."""
    queryset = wire_rows(prebuilds_for(user, prebuild_filter(request)))
    scope = list_scope("gitpod.v1.PrebuildService/ListPrebuilds", request.filter)
    return paginate(queryset, scope=scope, page_size=request.pagination.page_size, token=request.pagination.token)
