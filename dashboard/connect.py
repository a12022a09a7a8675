"""gitpod.v1.PrebuildService over the Connect protocol, served by the generated WSGI application of
the official gitpod-sdk and mounted as a Django view (so runserver, gunicorn, the test client and
live_server all serve it).

Each method: parse the request (what the protos declare but the library does not enforce: UUIDs,
required fields, ranges), call the service layer, convert the result with prebuilds/proto.py or
warmpools/proto.py. Business rules stay in the services; domain errors become Connect codes here.
"""

from __future__ import annotations

import contextvars
import io
import logging
import uuid
from types import SimpleNamespace

from connectrpc._protocol import ConnectWireError  # the library's own error body and HTTP status
from connectrpc.code import Code
from connectrpc.compat._codec import ProtoJSONCodec, google_protobuf_binary_codec
from connectrpc.errors import ConnectError
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.http.request import UnreadablePostError
from django.views.decorators.csrf import csrf_exempt
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.pagination_pb2 import PaginationResponse
from gitpod.v1.prebuild_connect import PrebuildServiceSync, PrebuildServiceWSGIApplication
from google.protobuf.json_format import Parse, ParseError

from core.errors import DomainError, InvalidArgument
from core.pagination import paginate
from core.shapes import Field
from prebuilds import services as prebuild_services
from prebuilds.proto import prebuild_message, wire_rows
from prebuilds.queries import PrebuildFilter, prebuilds_for
from prebuilds.shapes import CREATE_PREBUILD, PREBUILD_FILTER
from projects import services as project_services
from projects.authentication import ApiTokenThrottle, TokenGuessing, authenticate_bearer, client_address
from warmpools import services as warm_pool_services
from warmpools.proto import warm_pool_message
from warmpools.queries import warm_pools_for
from warmpools.shapes import WARM_POOL, WARM_POOL_FILTER

log = logging.getLogger(__name__)

# Request messages are small; anything bigger (after decompression, so also a gzip bomb) is refused
# with resource_exhausted before it is parsed.
READ_MAX_BYTES = 1024 * 1024

# The authenticated user of the current call. The view sets it around the call; the generated
# handlers only receive (request, ctx), and ctx carries no Django request.
_actor: contextvars.ContextVar = contextvars.ContextVar("connect_actor")


# --- request parsing (the protos' buf.validate rules) ---------------------------------------------


def _uuid(value: str, field: str, *, required: bool = True) -> str | None:
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required", field=field)
        return None
    try:
        uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"{field} must be a UUID", field=field) from None
    return value


def _uuid_list(values, field: Field) -> list[str]:
    _max_items(values, field)
    return [_uuid(value, field.path, required=True) for value in values]


def _max_items(values, field: Field) -> None:
    if len(values) > field.max_length:
        raise InvalidArgument(f"{field.path} takes at most {field.max_length} items", field=field.path)


def _size(request, field: Field) -> int | None:
    """An optional pool size; None when absent. (Its range is the service's rule, in the words of
    warmpools.shapes, as for every interface.)"""
    return getattr(request, field.path) if request.HasField(field.path) else None


def _page(request):
    return {"page_size": request.pagination.page_size, "token": request.pagination.token}


# --- the service -------------------------------------------------------------------------------


class PrebuildService(PrebuildServiceSync):
    def create_prebuild(self, request, ctx):
        project_id = _uuid(request.project_id, CREATE_PREBUILD.project_id.path)
        environment_class_id = None
        if request.HasField("environment_class_id"):
            environment_class_id = _uuid(
                request.environment_class_id, CREATE_PREBUILD.environment_class_id.path, required=False
            )
        if not request.HasField("spec"):
            raise InvalidArgument("spec is required", field="spec")
        timeout = request.spec.timeout.ToTimedelta() if request.spec.HasField("timeout") else None
        actor = _actor.get()
        project = project_services.project_get(user=actor, project_id=project_id)
        prebuild = prebuild_services.prebuild_create(
            actor=actor, project=project, environment_class_id=environment_class_id, timeout=timeout
        )
        return pb.CreatePrebuildResponse(prebuild=prebuild_message(prebuild))

    def get_prebuild(self, request, ctx):
        prebuild = prebuild_services.prebuild_get(
            user=_actor.get(), prebuild_id=_uuid(request.prebuild_id, "prebuild_id")
        )
        return pb.GetPrebuildResponse(prebuild=prebuild_message(prebuild))

    def list_prebuilds(self, request, ctx):
        f, shape = request.filter, PREBUILD_FILTER
        _max_items(f.phases, shape.phases)
        _max_items(f.triggered_by, shape.triggered_by)
        filters = PrebuildFilter(
            project_ids=_uuid_list(f.project_ids, shape.project_ids),
            phases=list(f.phases),
            triggered_by=list(f.triggered_by),
            creator_ids=_uuid_list(f.creator_ids, shape.creator_ids),
            executor_ids=_uuid_list(f.executor_ids, shape.executor_ids),
        )
        page = paginate(wire_rows(prebuilds_for(_actor.get(), filters)), **_page(request))
        return pb.ListPrebuildsResponse(
            prebuilds=[prebuild_message(p) for p in page.items],
            pagination=PaginationResponse(next_token=page.next_token),
        )

    def cancel_prebuild(self, request, ctx):
        actor = _actor.get()
        prebuild = prebuild_services.prebuild_get(user=actor, prebuild_id=_uuid(request.prebuild_id, "prebuild_id"))
        prebuild = prebuild_services.prebuild_cancel(actor=actor, prebuild=prebuild)
        return pb.CancelPrebuildResponse(prebuild=prebuild_message(prebuild))

    def delete_prebuild(self, request, ctx):
        actor = _actor.get()
        prebuild = prebuild_services.prebuild_get(user=actor, prebuild_id=_uuid(request.prebuild_id, "prebuild_id"))
        prebuild_services.prebuild_delete(actor=actor, prebuild=prebuild)
        return pb.DeletePrebuildResponse()

    def create_prebuild_logs_token(self, request, ctx):
        actor = _actor.get()
        prebuild = prebuild_services.prebuild_get(user=actor, prebuild_id=_uuid(request.prebuild_id, "prebuild_id"))
        token = prebuild_services.prebuild_create_logs_token(actor=actor, prebuild=prebuild)
        return pb.CreatePrebuildLogsTokenResponse(access_token=token)

    def create_warm_pool(self, request, ctx):
        project_id = _uuid(request.project_id, WARM_POOL.project_id.path)
        environment_class_id = _uuid(request.environment_class_id, WARM_POOL.environment_class_id.path)
        # desired_size (deprecated) has no presence on create: 0 means "not given".
        desired_size = request.desired_size or None
        min_size, max_size = _size(request, WARM_POOL.min_size), _size(request, WARM_POOL.max_size)
        actor = _actor.get()
        project = project_services.project_get(user=actor, project_id=project_id)
        pool = warm_pool_services.warm_pool_create(
            actor=actor,
            project=project,
            environment_class_id=environment_class_id,
            min_size=min_size,
            max_size=max_size,
            desired_size=desired_size,
        )
        return pb.CreateWarmPoolResponse(warm_pool=warm_pool_message(pool))

    def get_warm_pool(self, request, ctx):
        pool = warm_pool_services.warm_pool_get(
            user=_actor.get(), warm_pool_id=_uuid(request.warm_pool_id, "warm_pool_id")
        )
        return pb.GetWarmPoolResponse(warm_pool=warm_pool_message(pool))

    def list_warm_pools(self, request, ctx):
        queryset = warm_pools_for(
            _actor.get(),
            project_ids=_uuid_list(request.filter.project_ids, WARM_POOL_FILTER.project_ids),
            environment_class_ids=_uuid_list(
                request.filter.environment_class_ids, WARM_POOL_FILTER.environment_class_ids
            ),
        )
        page = paginate(queryset.select_related(None), **_page(request))
        return pb.ListWarmPoolsResponse(
            warm_pools=[warm_pool_message(pool) for pool in page.items],
            pagination=PaginationResponse(next_token=page.next_token),
        )

    def update_warm_pool(self, request, ctx):
        warm_pool_id = _uuid(request.warm_pool_id, "warm_pool_id")
        sizes = {
            field.name: _size(request, field)
            for field in (WARM_POOL.min_size, WARM_POOL.max_size, WARM_POOL.desired_size)
        }
        actor = _actor.get()
        pool = warm_pool_services.warm_pool_get(user=actor, warm_pool_id=warm_pool_id)
        pool = warm_pool_services.warm_pool_update(actor=actor, pool=pool, **sizes)
        return pb.UpdateWarmPoolResponse(warm_pool=warm_pool_message(pool))

    def delete_warm_pool(self, request, ctx):
        actor = _actor.get()
        pool = warm_pool_services.warm_pool_get(user=actor, warm_pool_id=_uuid(request.warm_pool_id, "warm_pool_id"))
        warm_pool_services.warm_pool_delete(actor=actor, pool=pool)
        return pb.DeleteWarmPoolResponse()


# --- errors and codecs -------------------------------------------------------------------------


def connect_error(exc: DomainError) -> ConnectError:
    """A domain error as a Connect error; the message names the field when there is one."""
    message = exc.message
    if exc.field and not message.startswith(exc.field):
        message = f"{exc.field}: {message}"
    return ConnectError(Code(exc.code), message)


class DomainErrors:
    """Unary interceptor: domain errors become their Connect code; anything unexpected becomes
    `internal` without leaking its text (the library would send str(exc) as `unknown`)."""

    def intercept_unary_sync(self, call_next, request, ctx):
        try:
            return call_next(request, ctx)
        except ConnectError:
            raise
        except DomainError as exc:
            raise connect_error(exc) from None
        except Exception:
            log.exception("Connect call %s failed", ctx.method.name)
            raise ConnectError(Code.INTERNAL, "internal error") from None


class LenientJSON(ProtoJSONCodec):
    """JSON that ignores unknown fields, as connect-go does, so a newer client's request still works.

    Every malformed body is invalid_argument (the library turns a decode error into one). A deeply
    nested body ('[' * 100000) makes the json module raise RecursionError, which protobuf wraps in
    its ParseError; it is answered here in so many words, not with the interpreter's message."""

    def decode(self, data, message_class):
        message = message_class()
        try:
            Parse(data, message, ignore_unknown_fields=True)
        except (ParseError, RecursionError) as exc:
            if isinstance(exc, RecursionError) or isinstance(exc.__cause__, RecursionError):
                raise ConnectError(Code.INVALID_ARGUMENT, "request body is nested too deeply") from None
            raise
        return message


APPLICATION = PrebuildServiceWSGIApplication(
    PrebuildService(),
    interceptors=[DomainErrors()],
    read_max_bytes=READ_MAX_BYTES,
    codecs=[google_protobuf_binary_codec(), LenientJSON()],
)


# --- the Django view ---------------------------------------------------------------------------


def _error_response(code: Code, message: str, headers: dict | None = None) -> HttpResponse:
    wire = ConnectWireError.from_exception(ConnectError(code, message))
    response = HttpResponse(wire.to_json_bytes(), status=wire.to_http_status().code, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@csrf_exempt
def connect_view(request: HttpRequest, method: str) -> HttpResponse:
    """Authenticate and throttle, then hand the request to the Connect application.

    Authentication comes first so that a stranger's body is never parsed. The body is read by
    Django and handed over as a BytesIO: on an error the library drains `wsgi.input` until EOF,
    which a raw socket or the test client's payload would not survive."""
    try:
        authenticated = authenticate_bearer(request.headers.get("Authorization", ""), client_address(request))
    except TokenGuessing as exc:
        return _error_response(Code.RESOURCE_EXHAUSTED, exc.message, {"Retry-After": str(round(exc.wait))})
    except DomainError as exc:
        return _error_response(Code.UNAUTHENTICATED, exc.message)
    if authenticated is None:
        return _error_response(Code.UNAUTHENTICATED, "missing bearer token: send Authorization: Bearer <token>")
    user, token_key = authenticated

    throttle = ApiTokenThrottle()
    if not throttle.allow_request(SimpleNamespace(auth=token_key, user=user), None):
        wait = throttle.wait() or 1
        return _error_response(
            Code.RESOURCE_EXHAUSTED,
            f"too many requests for this API token; retry in {wait:.0f} s",
            {"Retry-After": str(max(1, round(wait)))},
        )

    try:
        body = request.body
    except RequestDataTooBig:
        return _error_response(Code.RESOURCE_EXHAUSTED, "request body too large")
    except UnreadablePostError:
        return _error_response(Code.INVALID_ARGUMENT, "request body could not be read")
    environ = dict(request.environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))

    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers

    token = _actor.set(user)
    try:
        content = b"".join(APPLICATION(environ, start_response))
    finally:
        _actor.reset(token)
    response = HttpResponse(content, status=int(captured["status"].split()[0]))
    for name, value in captured["headers"]:
        response[name] = value
    return response
