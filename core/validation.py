"""The field rules of the gitpod.v1 request messages, checked as their descriptors declare them.

The SDK's descriptors carry the API's rules as buf.validate annotations (UUIDs, required fields,
ranges, list lengths, defined enum values), and Ona's servers enforce them. Here protovalidate
(buf's own library for exactly this) checks them, on the message itself: the Connect API checks the
wire message of every call, the REST API and the pages the same message built from their input, so
every interface accepts and refuses the same things. A violation is an InvalidArgument naming the
field path as protovalidate does (`filter.project_ids[3]`), in protovalidate's words. The rules that
need the database (a class enabled for the project, one pool per pair, ...) stay in the services.

`int_range` reads a rule's bounds off the same descriptors, for help texts and the paging default.

protovalidate 0.7.1 is the release whose buf.validate schema is the one the SDK's descriptors were
generated with (the SDK ships that `buf.validate.validate_pb2`); later ones expect a renamed schema,
and 2.x needs a protobuf-py that the SDK's pinned connectrpc excludes. Two of its gaps are closed
below, each where the library would otherwise accept what the rule refuses: `enum.defined_only` on
the items of a repeated enum, and durations to the nanosecond.
"""

from __future__ import annotations

from datetime import timedelta

from buf.validate import validate_pb2
from celpy import celtypes
from protovalidate import Validator
from protovalidate.internal import constraints

from core.errors import InvalidArgument


class _EnumRules(constraints.EnumConstraintRules):
    """protovalidate 0.7.1 checks `enum.defined_only` on a singular enum field, but never on the
    items of a repeated one (its check is in validate(), which items do not go through), so
    ListPrebuilds' `filter.phases: [5]` would pass. This adds the check for items, with the
    library's own rule id and words; the repeated field's rules add the index to the path."""

    def validate_item(self, ctx, val, *, for_key=False):
        super().validate_item(ctx, val, for_key=for_key)
        if self._defined_only and val not in self._field.enum_type.values_by_number:
            ctx.add(
                constraints.Violation(
                    rule=constraints.EnumConstraintRules._defined_only_rule_path,
                    rule_value=True,
                    constraint_id="enum.defined_only",
                    message="value must be one of the defined enum values",
                    for_key=for_key,
                )
            )


def _nanoseconds(value: timedelta) -> int:
    exact = getattr(value, "exact_nanoseconds", None)
    if exact is not None:
        return exact
    return ((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 1000


class _ExactDuration(celtypes.DurationType):
    """cel-python's duration (protovalidate 0.7.1's CEL interpreter) is a datetime.timedelta, to the
    microsecond: `7200.000000001s` became 7200 s and passed `duration.lte: 7200s`. This one keeps the
    nanoseconds of the google.protobuf.Duration it came from, and compares by them."""

    def __new__(cls, seconds, nanos=0, **kwargs):
        value = super().__new__(cls, seconds, nanos, **kwargs)
        value.exact_nanoseconds = seconds * 1_000_000_000 + nanos if isinstance(seconds, int) else None
        return value

    def _compare(self, other, compare):
        if not isinstance(other, timedelta):
            return NotImplemented
        return compare(_nanoseconds(self), _nanoseconds(other))

    def __lt__(self, other):
        return self._compare(other, int.__lt__)

    def __le__(self, other):
        return self._compare(other, int.__le__)

    def __gt__(self, other):
        return self._compare(other, int.__gt__)

    def __ge__(self, other):
        return self._compare(other, int.__ge__)

    def __eq__(self, other):
        return self._compare(other, int.__eq__)

    def __ne__(self, other):
        return self._compare(other, int.__ne__)

    def __hash__(self):
        return hash(_nanoseconds(self))


def _duration(message) -> _ExactDuration:
    return _ExactDuration(message.seconds, message.nanos)


# The library's rule factory looks the enum rules class up by this name when it compiles a field's
# rules, which happens on first use, and converts a Duration through this table when it evaluates
# one: both replaced here, before this module's validator has compiled anything.
constraints.EnumConstraintRules = _EnumRules
constraints._MSG_TYPE_URL_TO_CTOR["google.protobuf.Duration"] = _duration
constraints.make_duration = _duration
_validator = Validator()


def field_path(path: validate_pb2.FieldPath) -> str:
    """A violation's field as protovalidate writes it: `spec.timeout`, `filter.project_ids[3]`."""
    parts = []
    for element in path.elements:
        part = element.field_name
        if element.HasField("index"):
            part += f"[{element.index}]"
        elif element.WhichOneof("subscript"):
            part += f"[{getattr(element, element.WhichOneof('subscript'))!r}]"
        parts.append(part)
    return ".".join(parts)


def violations(message, *, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) of every rule `message` breaks; empty when it is valid. `prefix` is
    the path of `message` inside its request, for a part validated alone ("pagination")."""
    head = f"{prefix}." if prefix else ""
    return [(head + field_path(v.proto.field), v.proto.message) for v in _validator.collect_violations(message)]


def validate(message, *, prefix: str = "") -> None:
    """Raise InvalidArgument when `message` breaks a rule of its descriptor: its field is the first
    violation's path, its message names every violation ("max_size: value must be ..."), and its
    details hold them as buf.validate.Violations (what connect-go's validate interceptor sends)."""
    found = _validator.collect_violations(message)
    if not found:
        return
    head = f"{prefix}." if prefix else ""
    paths = [head + field_path(v.proto.field) for v in found]
    proto = validate_pb2.Violations(violations=[v.proto for v in found])
    raise InvalidArgument(
        "; ".join(f"{path}: {v.proto.message}" for path, v in zip(paths, found, strict=True)),
        field=paths[0],
        details=(proto,),
    )


def prepare(*message_classes) -> None:
    """Compile the rules of these messages now (at start-up) rather than in the first request."""
    for message_class in message_classes:
        _validator.collect_violations(message_class())


def int_range(message_class, path: str) -> tuple[int | None, int | None]:
    """(gte, lte) of an integer field's rule, `path` from `message_class` ("pagination.page_size")."""
    descriptor = message_class.DESCRIPTOR
    *parents, name = path.split(".")
    for parent in parents:
        descriptor = descriptor.fields_by_name[parent].message_type
    rules = descriptor.fields_by_name[name].GetOptions().Extensions[validate_pb2.field]
    kind = rules.WhichOneof("type")
    bounds = getattr(rules, kind)
    return (
        bounds.gte if bounds.HasField("gte") else None,
        bounds.lte if bounds.HasField("lte") else None,
    )
