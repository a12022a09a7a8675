"""What every REST endpoint shares: the error body, paging, the duration format, id fields, and
the JSON form of gitpod.v1 messages (written by a plan per message type, not protobuf's generic
encoder).

Requests of the eleven gitpod.v1 methods are parsed here only for their types; their field rules are
the descriptors', checked on the gitpod.v1 request message each endpoint builds from its input
(core.validation), exactly as the Connect API checks its wire message."""

from __future__ import annotations

import functools

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
)
from gitpod.v1.pagination_pb2 import PaginationRequest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import DomainError, InvalidArgument
from core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, paginate
from core.proto import INT32_MAX, INT32_MIN, duration, parse_duration
from core.shapes import Field, camel
from core.validation import validate

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

# Service and query field names are the protobuf ones; REST spells them as its JSON (camelCase, as
# the declared shapes do: core.shapes.camel) or, for paging and filters, as its query parameters.
_REST_FIELDS = {"pagination.page_size": "page_size", "pagination.token": "token"}


def rest_field(field: str | None) -> str | None:
    if not field:
        return field
    if field in _REST_FIELDS:
        return _REST_FIELDS[field]
    if field.startswith("filter."):
        return field.removeprefix("filter.")
    return camel(field)


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


# --- declared request fields (core.shapes) as serializer fields --------------------------------


def drf_field(field: Field, drf_class, *, limits: bool = True, **options) -> serializers.Field:
    """The serializer field of a declared request field: its help text and (with `limits`) its
    limits from the declaration, plus what only REST says (required, allow_null, ...). Without
    `limits` the service alone checks them, and REST answers in the service's words (as Connect
    does). The field remembers its declaration, for serializer_class."""
    kwargs = {"help_text": field.help_text} if field.help_text else {}
    if limits:
        kwargs.update(field.limits())
    instance = drf_class(**{**kwargs, **options})
    instance.declared = field
    return instance


def serializer_class(name: str, *fields, base=serializers.Serializer, **attrs) -> type:
    """A serializer class named `name` (its OpenAPI component) with `fields`, in this order: each
    made by drf_field (under its declared REST key) or a (key, field) pair for what is no declared
    field (an id, an object that holds declared fields). `attrs` are the rest of a class body:
    methods, __doc__, __module__."""
    # DRF orders fields by when they were made: as arguments, in the order given.
    declared = dict(item if isinstance(item, tuple) else (item.declared.key, item) for item in fields)
    return type(name, (base,), {"__module__": attrs.pop("__module__", base.__module__), **declared, **attrs})


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


class DurationMessageField(DurationField):
    """The same syntax, parsed into a google.protobuf.Duration, nanoseconds and all, for a gitpod.v1
    request message (a timedelta would round 7200.000000001s down to 7200s before the rule sees it)."""

    def to_internal_value(self, data):
        text = serializers.CharField.to_internal_value(self, data)
        message = Duration()
        try:
            message.FromJsonString(text)
        except (ValueError, OverflowError, TypeError):
            raise serializers.ValidationError('must be a duration in seconds such as "3600s"') from None
        return message


@extend_schema_field(OpenApiTypes.UUID)
class IdField(serializers.CharField):
    """An id as the client wrote it: its rule (a UUID) is the descriptor's, checked on the request
    message, so it is not normalised here (DRF's UUIDField would also take 32 bare hex digits)."""

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, allow_blank=True, **kwargs)


def Int32Field(**kwargs) -> serializers.IntegerField:  # noqa: N802 (a field, as DRF's are)
    """An int32 of a request message: the bounds of the type only, its rule is the descriptor's."""
    return serializers.IntegerField(min_value=INT32_MIN, max_value=INT32_MAX, **kwargs)


class PageQuerySerializer(serializers.Serializer):
    page_size = Int32Field(
        required=False,
        default=0,
        help_text=f"0 or absent: {DEFAULT_PAGE_SIZE}; at most {MAX_PAGE_SIZE} (pagination.page_size of gitpod.v1)",
    )
    token = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=500,
        help_text="pagination.nextToken of the page before, with the same filter",
    )


def pagination_of(params: dict) -> PaginationRequest:
    """The PaginationRequest of query parameters parsed by (a serializer extending) PageQuerySerializer."""
    return PaginationRequest(page_size=params["page_size"], token=params["token"])


class PaginationSerializer(serializers.Serializer):
    nextToken = serializers.CharField(help_text="token for the next page; empty on the last page")  # noqa: N815


def message_data(message) -> dict:
    """The JSON form of a gitpod.v1 message, exactly as the Connect JSON codec writes it (and as
    connect-go's protojson does): `MessageToDict(message)`, so a field at its default value (0, "",
    false, the UNSPECIFIED enum value, an unset optional field) is left out.

    protobuf's MessageToDict is generic pure Python and cost more than the rest of a 25-item list
    request; this walks a plan made once per message type instead. Kinds the plan does not cover
    (repeated, maps, floats, bytes, other well-known types) go to MessageToDict, and a test holds
    the two equal on real prebuilds and pools."""
    plan = _json_plan(message.DESCRIPTOR)
    if plan is None:
        return MessageToDict(message)
    data = {}
    for name, json_name, kind, has_presence, enum_values in plan:
        if has_presence:
            if not message.HasField(name):
                continue
        elif not getattr(message, name):
            continue  # a default value (0, "", false, enum 0) of a field without presence
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


def page_of(queryset, request, name: str, render, *, serializer=PageQuerySerializer) -> Response:
    """One page of `queryset` as {name: [...], "pagination": {"nextToken"}}, for a REST list that
    has no gitpod.v1 method: its paging is checked by the rule of gitpod.v1.PaginationRequest, and
    its tokens are bound to its path and its filter parameters (those of `serializer`, a
    PageQuerySerializer with the list's filters)."""
    params = query(serializer, request)
    pagination = pagination_of(params)
    validate(pagination, prefix="pagination")
    paging = set(PageQuerySerializer().fields)
    names = sorted(set(serializer().fields) - paging)
    scope = request.path + "?" + "&".join(f"{n}={v}" for n in names for v in request.query_params.getlist(n))
    page = paginate(queryset, scope=scope, page_size=pagination.page_size, token=pagination.token)
    return page_response(page, name, render)


def page_response(page, name: str, render) -> Response:
    return Response({name: [render(item) for item in page.items], "pagination": {"nextToken": page.next_token}})


ID_PARAMETER = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
