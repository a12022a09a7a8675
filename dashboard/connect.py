"""gitpod.v1.PrebuildService over the Connect protocol, served by the generated WSGI application of
the official gitpod-sdk and mounted as a Django view (so runserver, gunicorn, the test client and
live_server all serve it).

Every request message is first checked by the rules its descriptor declares (core.validation, with
protovalidate), so a request Ona's servers refuse is refused here, as invalid_argument naming the
field. Then each method reads its request with the conversions REST shares (prebuilds/proto.py,
warmpools/proto.py), calls the service layer, and converts the result back. Business rules stay in
the services; domain errors become Connect codes here.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import sys
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
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import Parse, ParseError
from protobuf.wkt import Any  # protobuf-py's, which connectrpc's error details are made of

from core.errors import DomainError
from core.validation import prepare, validate
from prebuilds import services as prebuild_services
from prebuilds.proto import create_prebuild_arguments, prebuild_message, prebuild_page
from projects import services as project_services
from projects.authentication import ApiTokenThrottle, TokenGuessing, authenticate_bearer, client_address
from warmpools import services as warm_pool_services
from warmpools.proto import size_arguments, warm_pool_message, warm_pool_page

log = logging.getLogger(__name__)

# Request messages are small; anything bigger (after decompression, so also a gzip bomb) is refused
# with resource_exhausted before it is parsed.
READ_MAX_BYTES = 1024 * 1024

# The authenticated user of the current call. The view sets it around the call; the generated
# handlers only receive (request, ctx), and ctx carries no Django request.
_actor: contextvars.ContextVar = contextvars.ContextVar("connect_actor")

REQUESTS = (
    pb.CreatePrebuildRequest,
    pb.ListPrebuildsRequest,
    pb.GetPrebuildRequest,
    pb.CancelPrebuildRequest,
    pb.DeletePrebuildRequest,
    pb.CreatePrebuildLogsTokenRequest,
    pb.CreateWarmPoolRequest,
    pb.GetWarmPoolRequest,
    pb.ListWarmPoolsRequest,
    pb.UpdateWarmPoolRequest,
    pb.DeleteWarmPoolRequest,
)
prepare(*REQUESTS)  # their rules compiled once, at start-up


# --- the service (each request already checked by its descriptor's rules) -----------------------


def _pagination(page) -> PaginationResponse:
    return PaginationResponse(next_token=page.next_token)


class PrebuildService(PrebuildServiceSync):
    def create_prebuild(self, request, ctx):
        arguments = create_prebuild_arguments(request)
        actor = _actor.get()
        project = project_services.project_get(user=actor, project_id=arguments.pop("project_id"))
        prebuild = prebuild_services.prebuild_create(actor=actor, project=project, **arguments)
        return pb.CreatePrebuildResponse(prebuild=prebuild_message(prebuild))

    def get_prebuild(self, request, ctx):
        prebuild = prebuild_services.prebuild_get(user=_actor.get(), prebuild_id=request.prebuild_id)
        return pb.GetPrebuildResponse(prebuild=prebuild_message(prebuild))

    def list_prebuilds(self, request, ctx):
        page = prebuild_page(_actor.get(), request)
        return pb.ListPrebuildsResponse(
            prebuilds=[prebuild_message(p) for p in page.items], pagination=_pagination(page)
        )

    def cancel_prebuild(self, request, ctx):
        actor = _actor.get()
        prebuild = prebuild_services.prebuild_get(user=actor, prebuild_id=request.prebuild_id)
        prebuild = prebuild_services.prebuild_cancel(actor=actor, prebuild=prebuild)
        return pb.CancelPrebuildResponse(prebuild=prebuild_message(prebuild))

    def delete_prebuild(self, request, ctx):
        actor = _actor.get()
        prebuild = prebuild_services.prebuild_get(user=actor, prebuild_id=request.prebuild_id)
        prebuild_services.prebuild_delete(actor=actor, prebuild=prebuild)
        return pb.DeletePrebuildResponse()

    def create_prebuild_logs_token(self, request, ctx):
        actor = _actor.get()
        prebuild = prebuild_services.prebuild_get(user=actor, prebuild_id=request.prebuild_id)
        token = prebuild_services.prebuild_create_logs_token(actor=actor, prebuild=prebuild)
        return pb.CreatePrebuildLogsTokenResponse(access_token=token)

    def create_warm_pool(self, request, ctx):
        actor = _actor.get()
        project = project_services.project_get(user=actor, project_id=request.project_id)
        pool = warm_pool_services.warm_pool_create(
            actor=actor, project=project, environment_class_id=request.environment_class_id, **size_arguments(request)
        )
        return pb.CreateWarmPoolResponse(warm_pool=warm_pool_message(pool))

    def get_warm_pool(self, request, ctx):
        pool = warm_pool_services.warm_pool_get(user=_actor.get(), warm_pool_id=request.warm_pool_id)
        return pb.GetWarmPoolResponse(warm_pool=warm_pool_message(pool))

    def list_warm_pools(self, request, ctx):
        page = warm_pool_page(_actor.get(), request)
        return pb.ListWarmPoolsResponse(
            warm_pools=[warm_pool_message(pool) for pool in page.items], pagination=_pagination(page)
        )

    def update_warm_pool(self, request, ctx):
        actor = _actor.get()
        pool = warm_pool_services.warm_pool_get(user=actor, warm_pool_id=request.warm_pool_id)
        pool = warm_pool_services.warm_pool_update(actor=actor, pool=pool, **size_arguments(request))
        return pb.UpdateWarmPoolResponse(warm_pool=warm_pool_message(pool))

    def delete_warm_pool(self, request, ctx):
        actor = _actor.get()
        pool = warm_pool_services.warm_pool_get(user=actor, warm_pool_id=request.warm_pool_id)
        warm_pool_services.warm_pool_delete(actor=actor, pool=pool)
        return pb.DeleteWarmPoolResponse()


# --- errors and codecs -------------------------------------------------------------------------


def connect_error(exc: DomainError) -> ConnectError:
    """A domain error as a Connect error; the message names the field when there is one. A rule's
    violations travel as a buf.validate.Violations detail too, as connect-go's validate interceptor
    sends them."""
    message = exc.message
    if exc.field and not message.startswith(exc.field):
        message = f"{exc.field}: {message}"
    # The library packs details of its own protobuf runtime (protobuf-py): ours are google.protobuf
    # messages, handed over packed, as their type and bytes.
    details = [
        Any(type_url=f"type.googleapis.com/{detail.DESCRIPTOR.full_name}", value=detail.SerializeToString())
        for detail in exc.details
    ]
    return ConnectError(Code(exc.code), message, details=details)


class CheckedCalls:
    """Unary interceptor: every request is checked by its descriptor's rules before its method runs;
    domain errors (a broken rule included) become their Connect code; anything unexpected becomes
    `internal` without leaking its text (the library would send str(exc) as `unknown`)."""

    def intercept_unary_sync(self, call_next, request, ctx):
        try:
            validate(request)
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
    An enum name the descriptors do not define is refused, though (invalid_argument naming the
    field), as an undefined number is in the binary codec: protobuf's parser would drop it without
    a word along with unknown fields, and a misspelt phase in a filter would list everything.

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
        path = unknown_enum_name(json.loads(data), message.DESCRIPTOR)
        if path:
            raise ConnectError(Code.INVALID_ARGUMENT, f"{path}: value must be one of the defined enum values")
        return message


def unknown_enum_name(data, descriptor, path: str = "") -> str | None:
    """The path of the first enum name in `data` (a parsed JSON object of `descriptor`'s message)
    that names no value of its enum, or None. Fields are matched as protobuf's parser matches them
    (JSON name or proto name); unknown ones are ignored, as the parser ignored them."""
    if not isinstance(data, dict):
        return None
    for field in descriptor.fields:
        key = field.json_name if field.json_name in data else field.name
        if key not in data:
            continue
        here = f"{path}{field.name}"
        values = data[key] if field.label == FieldDescriptor.LABEL_REPEATED else [data[key]]
        if not isinstance(values, list):
            continue
        for index, value in enumerate(values):
            at = f"{here}[{index}]" if field.label == FieldDescriptor.LABEL_REPEATED else here
            if field.type == FieldDescriptor.TYPE_ENUM:
                if isinstance(value, str) and value not in field.enum_type.values_by_name:
                    return at
            elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.full_name.startswith(
                "google.protobuf."
            ):
                found = unknown_enum_name(value, field.message_type, f"{at}.")
                if found:
                    return found
    return None


APPLICATION = PrebuildServiceWSGIApplication(
    PrebuildService(),
    interceptors=[CheckedCalls()],
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
    # A WSGI environ for the Connect application: the server's own under WSGI; under ASGI (which
    # has none) Django's META, which carries the same CGI keys, and the WSGI ones it lacks.
    environ = dict(getattr(request, "environ", request.META))
    environ.setdefault("wsgi.url_scheme", request.scheme)
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    environ.setdefault("wsgi.errors", sys.stderr)
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
