"""The request rules of gitpod.v1.PrebuildService, and request framing, against a live gunicorn with
Ona's official client, in the binary codec (ona_sdk) and in JSON (the SDK's generated client with the
JSON codec); one server for the module.

- Every field rule the descriptors of the eleven request messages declare (buf.validate), each with
  a value on both sides of its boundary: refused as invalid_argument naming the field, or accepted
  (the call then goes on to the service: not_found for the ids of nothing, a page for a list). A
  table test checks that the table holds every rule found by walking the descriptors.
- Every method sent with `Transfer-Encoding: chunked` (raw HTTP, http.client), binary and JSON,
  answers as the same request sent with a Content-Length.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from buf.validate import validate_pb2
from connectrpc.code import Code
from connectrpc.compat import google_protobuf_json_codec
from connectrpc.errors import ConnectError
from gitpod.v1 import prebuild_pb2 as pb
from gitpod.v1.pagination_pb2 import PaginationRequest
from gitpod.v1.prebuild_connect import PrebuildServiceClientSync
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict, MessageToJson
from ona_sdk import create_client

from tests.processes.api.live import start_live_server

pytestmark = pytest.mark.slow

PREFIX = "/gitpod.v1.PrebuildService/"
NOBODY = "3f1c5b0e-1d2c-4b5a-8e7f-000000000000"  # the id of nothing: an accepted request finds nothing
F = pb.ListPrebuildsRequest.Filter
WF = pb.ListWarmPoolsRequest.Filter

REQUESTS = {
    "CreatePrebuild": pb.CreatePrebuildRequest,
    "ListPrebuilds": pb.ListPrebuildsRequest,
    "GetPrebuild": pb.GetPrebuildRequest,
    "CancelPrebuild": pb.CancelPrebuildRequest,
    "DeletePrebuild": pb.DeletePrebuildRequest,
    "CreatePrebuildLogsToken": pb.CreatePrebuildLogsTokenRequest,
    "CreateWarmPool": pb.CreateWarmPoolRequest,
    "GetWarmPool": pb.GetWarmPoolRequest,
    "ListWarmPools": pb.ListWarmPoolsRequest,
    "UpdateWarmPool": pb.UpdateWarmPoolRequest,
    "DeleteWarmPool": pb.DeleteWarmPoolRequest,
}

# A valid request of each method that finds nothing (so an accepted variation changes nothing).
BASELINE = {
    "CreatePrebuild": lambda: pb.CreatePrebuildRequest(project_id=NOBODY, spec=pb.PrebuildSpec()),
    "ListPrebuilds": pb.ListPrebuildsRequest,
    "GetPrebuild": lambda: pb.GetPrebuildRequest(prebuild_id=NOBODY),
    "CancelPrebuild": lambda: pb.CancelPrebuildRequest(prebuild_id=NOBODY),
    "DeletePrebuild": lambda: pb.DeletePrebuildRequest(prebuild_id=NOBODY),
    "CreatePrebuildLogsToken": lambda: pb.CreatePrebuildLogsTokenRequest(prebuild_id=NOBODY),
    "CreateWarmPool": lambda: pb.CreateWarmPoolRequest(project_id=NOBODY, environment_class_id=NOBODY),
    "GetWarmPool": lambda: pb.GetWarmPoolRequest(warm_pool_id=NOBODY),
    "ListWarmPools": pb.ListWarmPoolsRequest,
    "UpdateWarmPool": lambda: pb.UpdateWarmPoolRequest(warm_pool_id=NOBODY),
    "DeleteWarmPool": lambda: pb.DeleteWarmPoolRequest(warm_pool_id=NOBODY),
}


# --- the rules, as the descriptors declare them ---------------------------------------------------


def declared_rules(descriptor, prefix="") -> set[tuple[str, str]]:
    """(field path, rule) of every buf.validate field rule of a message, its sub-messages included:
    "required", "string.uuid", "int32.gte", "duration.lte", "repeated.max_items",
    "repeated.items.string.uuid", "enum.defined_only", "ignore" (when to skip the field's rules), ..."""
    found = set()
    for field in descriptor.fields:
        path = prefix + field.name
        rules = field.GetOptions().Extensions[validate_pb2.field]
        if rules.required:
            found.add((path, "required"))
        if rules.ignore:
            found.add((path, "ignore"))
        found |= {(path, rule) for rule in _typed(rules)}
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.full_name.startswith("google."):
            found |= declared_rules(field.message_type, path + ".")
    return found


def _typed(rules, head="") -> list[str]:
    kind = rules.WhichOneof("type")
    if kind is None:
        return []
    typed = getattr(rules, kind)
    names = []
    for option, value in typed.ListFields():
        if kind == "repeated" and option.name == "items":
            names += _typed(value, head + "repeated.items.")
        else:
            names.append(f"{head}{kind}.{option.name}")
    return names


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # as the refusal names it
    rule: str
    label: str
    change: object  # the request -> None: the one change from the baseline
    accepted: bool

    @property
    def id(self):
        return f"{self.method}-{self.label}-{'ok' if self.accepted else 'refused'}"


def set_field(path, value):
    def change(request):
        *parents, name = path.split(".")
        target = request
        for parent in parents:
            target = getattr(target, parent)
        if isinstance(value, list):
            getattr(target, name).extend(value)
        elif isinstance(value, Duration):
            getattr(target, name).CopyFrom(value)
        else:
            setattr(target, name, value)

    return change


def clear(name):
    return lambda request: request.ClearField(name)


def uuid_cases(method, field, *, required):
    cases = [
        Case(method, field, "string.uuid", f"{field}-uuid", set_field(field, NOBODY), True),
        Case(method, field, "string.uuid", f"{field}-upper-uuid", set_field(field, NOBODY.upper()), True),
        Case(method, field, "string.uuid", f"{field}-35-chars", set_field(field, NOBODY[:-1]), False),
        Case(method, field, "string.uuid", f"{field}-no-dashes", set_field(field, NOBODY.replace("-", "")), False),
    ]
    if required:
        cases += [
            Case(method, field, "required", f"{field}-given", set_field(field, NOBODY), True),
            Case(method, field, "required", f"{field}-empty", set_field(field, ""), False),
        ]
    return cases


def int_cases(method, path, low, high, rule="int32"):
    return [
        Case(method, path, f"{rule}.gte", f"{path}-{low - 1}", set_field(path, low - 1), False),
        Case(method, path, f"{rule}.gte", f"{path}-{low}", set_field(path, low), True),
        Case(method, path, f"{rule}.lte", f"{path}-{high}", set_field(path, high), True),
        Case(method, path, f"{rule}.lte", f"{path}-{high + 1}", set_field(path, high + 1), False),
    ]


def ids_cases(method, path, at_most=25):
    return [
        Case(method, path, "repeated.max_items", f"{path}-{at_most}", set_field(path, [NOBODY] * at_most), True),
        Case(method, path, "repeated.max_items", f"{path}-{at_most + 1}", set_field(path, [NOBODY] * 26), False),
        Case(method, path, "repeated.items.string.uuid", f"{path}-uuid", set_field(path, [NOBODY]), True),
        Case(method, path + "[1]", "repeated.items.string.uuid", f"{path}-x", set_field(path, [NOBODY, "x"]), False),
    ]


def enum_list_cases(method, path, defined, undefined, at_most):
    return [
        Case(method, path, "repeated.max_items", f"{path}-{at_most}", set_field(path, [defined] * at_most), True),
        Case(
            method,
            path,
            "repeated.max_items",
            f"{path}-{at_most + 1}",
            set_field(path, [defined] * (at_most + 1)),
            False,
        ),
        Case(method, path, "repeated.items.enum.defined_only", f"{path}-defined", set_field(path, [defined]), True),
        Case(
            method,
            path + "[0]",
            "repeated.items.enum.defined_only",
            f"{path}-{undefined}",
            set_field(path, [undefined]),
            False,
        ),
    ]


def page_cases(method):
    return int_cases(method, "pagination.page_size", 0, 100)


TIMEOUT = "spec.timeout"
CASES = [
    # CreatePrebuild
    *uuid_cases("CreatePrebuild", "project_id", required=True),
    *uuid_cases("CreatePrebuild", "environment_class_id", required=False),
    Case(
        "CreatePrebuild",
        "environment_class_id",
        "string.uuid",
        "class-set-empty",
        set_field("environment_class_id", ""),
        False,
    ),
    Case("CreatePrebuild", "spec", "required", "spec-given", lambda r: None, True),
    Case("CreatePrebuild", "spec", "required", "spec-absent", clear("spec"), False),
    Case(
        "CreatePrebuild",
        "spec.desired_phase",
        "enum.defined_only",
        "phase-defined",
        set_field("spec.desired_phase", 80),
        True,
    ),
    Case(
        "CreatePrebuild",
        "spec.desired_phase",
        "enum.defined_only",
        "phase-undefined",
        set_field("spec.desired_phase", 5),
        False,
    ),
    Case(
        "CreatePrebuild",
        TIMEOUT,
        "duration.gte",
        "299.999999999s",
        set_field(TIMEOUT, Duration(seconds=299, nanos=999_999_999)),
        False,
    ),
    Case("CreatePrebuild", TIMEOUT, "duration.gte", "300s", set_field(TIMEOUT, Duration(seconds=300)), True),
    Case("CreatePrebuild", TIMEOUT, "duration.lte", "7200s", set_field(TIMEOUT, Duration(seconds=7200)), True),
    Case(
        "CreatePrebuild",
        TIMEOUT,
        "duration.lte",
        "7200.000000001s",
        set_field(TIMEOUT, Duration(seconds=7200, nanos=1)),
        False,
    ),
    # ListPrebuilds
    *page_cases("ListPrebuilds"),
    *ids_cases("ListPrebuilds", "filter.project_ids"),
    *ids_cases("ListPrebuilds", "filter.creator_ids"),
    *ids_cases("ListPrebuilds", "filter.executor_ids"),
    *enum_list_cases("ListPrebuilds", "filter.phases", pb.PREBUILD_PHASE_PENDING, 5, 10),
    *enum_list_cases("ListPrebuilds", "filter.triggered_by", pb.PrebuildMetadata.PREBUILD_TRIGGER_MANUAL, 3, 5),
    # the methods of one prebuild
    *(
        case
        for method in ("GetPrebuild", "CancelPrebuild", "DeletePrebuild", "CreatePrebuildLogsToken")
        for case in uuid_cases(method, "prebuild_id", required=True)
    ),
    # CreateWarmPool: desired_size is ignored while 0 (unpopulated), and 1 to 20 otherwise
    *uuid_cases("CreateWarmPool", "project_id", required=True),
    *uuid_cases("CreateWarmPool", "environment_class_id", required=True),
    # (0 would be below the range, but 0 is "unpopulated": the lower boundary's far side is -5)
    Case("CreateWarmPool", "desired_size", "int32.gte", "desired_size--5", set_field("desired_size", -5), False),
    Case("CreateWarmPool", "desired_size", "int32.gte", "desired_size-1", set_field("desired_size", 1), True),
    Case("CreateWarmPool", "desired_size", "int32.lte", "desired_size-20", set_field("desired_size", 20), True),
    Case("CreateWarmPool", "desired_size", "int32.lte", "desired_size-21", set_field("desired_size", 21), False),
    Case("CreateWarmPool", "desired_size", "ignore", "desired-0-is-unset", set_field("desired_size", 0), True),
    Case("CreateWarmPool", "desired_size", "ignore", "desired-minus-1", set_field("desired_size", -1), False),
    *int_cases("CreateWarmPool", "min_size", 0, 20),
    *int_cases("CreateWarmPool", "max_size", 1, 20),
    # the methods of one pool
    *(
        case
        for method in ("GetWarmPool", "DeleteWarmPool", "UpdateWarmPool")
        for case in uuid_cases(method, "warm_pool_id", required=True)
    ),
    # ListWarmPools
    *page_cases("ListWarmPools"),
    *ids_cases("ListWarmPools", "filter.project_ids"),
    *ids_cases("ListWarmPools", "filter.environment_class_ids"),
    # UpdateWarmPool: every size has presence, so desired_size 0 is given, and refused
    *int_cases("UpdateWarmPool", "desired_size", 1, 20),
    *int_cases("UpdateWarmPool", "min_size", 0, 20),
    *int_cases("UpdateWarmPool", "max_size", 1, 20),
]


def test_the_table_holds_every_rule_of_the_descriptors_on_both_sides():
    declared = {
        (method, path, rule)
        for method, request in REQUESTS.items()
        for path, rule in declared_rules(request.DESCRIPTOR)
    }
    # "ignore" is IGNORE_IF_UNPOPULATED: a rule about the rules, tested as its own kind.
    assert ("CreateWarmPool", "desired_size", "ignore") in declared
    covered = {}
    for case in CASES:
        covered.setdefault((case.method, case.path.split("[")[0], case.rule), set()).add(case.accepted)
    assert set(covered) == declared
    one_sided = [key for key, sides in covered.items() if sides != {True, False}]
    assert one_sided == []
    assert len({case.id for case in CASES}) == len(CASES)


# --- the server and the clients -------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live_server(tmp_path_factory.mktemp("rules"))
    yield server
    server.stop()


class Bearer:
    """The API token on every call of the generated client (ona_sdk sets it the same way)."""

    def __init__(self, token):
        self.token = token

    def on_start_sync(self, ctx):
        ctx.request_headers["Authorization"] = f"Bearer {self.token}"

    def on_end_sync(self, token, ctx, error):
        pass


@pytest.fixture(scope="module")
def clients(live):
    token = live.seed["tokens"]["admin"]
    json_client = PrebuildServiceClientSync(
        live.base_url, codec=google_protobuf_json_codec(), send_compression=None, interceptors=[Bearer(token)]
    )
    binary_client = create_client(api_key=token, base_url=live.base_url).services.prebuild
    return {"binary": binary_client, "json": json_client}


def snake(method: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in method).lstrip("_")


@pytest.mark.parametrize("codec", ["binary", "json"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_rule_with_the_official_client(clients, codec, case):
    request = BASELINE[case.method]()
    case.change(request)
    call = getattr(clients[codec], snake(case.method))
    try:
        call(request)
        code, message = None, ""  # answered
    except ConnectError as error:
        code, message = error.code, error.message
    if case.accepted:
        assert code in (None, Code.NOT_FOUND), (code, message, request)
    else:
        assert code is Code.INVALID_ARGUMENT, (code, message, request)
        assert f"{case.path}: " in message, message


# --- chunked bodies -------------------------------------------------------------------------------

VOLATILE = {"id", "createdAt", "updatedAt", "accessToken", "environmentClassId"}


def post(live, method, body: bytes, content_type: str, *, chunked: bool) -> tuple[int, dict]:
    url = urlsplit(live.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {live.seed['tokens']['admin']}"}
    if chunked:
        # An iterable body without a length: http.client frames it as chunks (here of 5 bytes).
        pieces = [body[i : i + 5] for i in range(0, len(body), 5)]
        connection.request("POST", PREFIX + method, body=iter(pieces), headers=headers, encode_chunked=True)
    else:
        connection.request("POST", PREFIX + method, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read()
    connection.close()
    if response.status != 200 or content_type == "application/json":
        return response.status, json.loads(content)
    response_class = getattr(pb, f"{method}Response")
    return response.status, MessageToDict(response_class.FromString(content))


def normalized(data):
    """Without what differs between two equal calls (new ids, times, tokens, the class of a pool)."""
    if isinstance(data, dict):
        return {key: normalized(value) for key, value in data.items() if key not in VOLATILE}
    if isinstance(data, (list, tuple)):
        return [normalized(item) for item in data]
    return data


def encoded(message, codec) -> tuple[bytes, str]:
    if codec == "json":
        return MessageToJson(message).encode(), "application/json"
    return message.SerializeToString(), "application/proto"


@pytest.mark.parametrize("codec", ["binary", "json"])
def test_every_method_reads_a_chunked_body_as_a_sized_one(live, clients, codec):
    seed, classes = live.seed, live.seed["classes"]
    app, lib = seed["projects"]["app"], seed["projects"]["lib"]
    # One pool per (project, class): each codec creates two, on pairs of its own.
    pairs = {
        "binary": [(app, classes["small"]), (app, classes["large"])],
        "json": [(app, classes["medium"]), (lib, classes["small"])],
    }

    def both(method, request_or_pair):
        """(sized, chunked) answers: the same request twice, or two creates of one shape."""
        if method == "CreateWarmPool":
            answers = []
            for (project, environment_class), chunked in zip(pairs[codec], (False, True), strict=True):
                create = pb.CreateWarmPoolRequest(
                    project_id=project, environment_class_id=environment_class, max_size=2
                )
                answers.append(post(live, method, *encoded(create, codec), chunked=chunked))
            return answers
        body, content_type = encoded(request_or_pair, codec)
        return [post(live, method, body, content_type, chunked=chunked) for chunked in (False, True)]

    sized, chunked = both("CreateWarmPool", None)
    assert sized[0] == chunked[0] == 200, (sized, chunked)
    pool_id = sized[1]["warmPool"]["id"]
    for answer in (sized, chunked):
        answer[1]["warmPool"]["metadata"].pop("projectId")
    assert normalized(chunked) == normalized(sized)

    prebuild = clients["binary"].create_prebuild(pb.CreatePrebuildRequest(project_id=app, spec=pb.PrebuildSpec()))
    prebuild_id = prebuild.prebuild.id
    # Sent with a length, then chunked; a body read as empty would be answered otherwise (a missing
    # id is invalid_argument, an empty filter lists everything).
    calls = [
        pb.CreatePrebuildRequest(project_id=app, spec=pb.PrebuildSpec(timeout=Duration(seconds=900))),
        pb.ListPrebuildsRequest(filter=F(project_ids=[NOBODY])),
        pb.ListPrebuildsRequest(filter=F(project_ids=[app]), pagination=PaginationRequest(page_size=1)),
        pb.GetPrebuildRequest(prebuild_id=prebuild_id),
        pb.CreatePrebuildLogsTokenRequest(prebuild_id=prebuild_id),
        pb.CancelPrebuildRequest(prebuild_id=prebuild_id),  # the second cancel changes nothing
        pb.DeletePrebuildRequest(prebuild_id=prebuild_id),
        pb.GetWarmPoolRequest(warm_pool_id=pool_id),
        pb.ListWarmPoolsRequest(filter=WF(project_ids=[NOBODY])),
        pb.ListWarmPoolsRequest(filter=WF(environment_class_ids=[pairs[codec][0][1]])),
        pb.UpdateWarmPoolRequest(warm_pool_id=pool_id, max_size=3),  # the second update changes nothing
        pb.DeleteWarmPoolRequest(warm_pool_id=pool_id),
        pb.GetPrebuildRequest(prebuild_id="not-a-uuid"),  # refused alike
    ]
    methods = {"CreateWarmPool"}
    for request in calls:
        method = request.DESCRIPTOR.name.removesuffix("Request")
        methods.add(method)
        sized, chunked = both(method, request)
        assert normalized(chunked) == normalized(sized), (method, sized, chunked)
        if request.DESCRIPTOR.name.startswith("List") and NOBODY in str(request):
            assert sized[0] == 200 and not {"prebuilds", "warmPools"} & set(sized[1]), sized
        elif request.DESCRIPTOR.name.startswith("List"):
            assert sized[0] == 200 and {"prebuilds", "warmPools"} & set(sized[1]), sized
    assert methods == set(REQUESTS)
