"""Request shapes: every request field of a resource declared once, with the names each interface
knows it by and its limits, so that REST, Connect, the page forms and the services cannot drift.

A field's spellings:
- `name`: the service's keyword argument (for a foreign key, the model's attname: `executor_id`);
- `path`: its place in the gitpod.v1 message, snake_case: what the Connect API reads, and what a
  service's DomainError.field says when the field is refused;
- `rest`: its REST spelling, the camelCase of the path (`prebuildConfiguration.timeout`), or for a
  query parameter its own name (`project_ids`);
- `form`: the page form's field name, which also shows the errors of that path (default `name`).

Its limits (min_value, max_value; max_length: characters, or items of a list) are checked by the
service, whatever the interface, in the words of `min_error` / `max_error` / `length_error`; an
interface that checks a limit earlier (a REST serializer, a form field) takes it from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def camel(path: str) -> str:
    """A snake_case field path in protobuf's JSON spelling: prebuild_configuration.environment_class_ids ->
    prebuildConfiguration.environmentClassIds."""
    return ".".join(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part) for part in path.split("."))


@dataclass(frozen=True)
class Field:
    name: str
    path: str
    rest_name: str | None = None  # the REST spelling when it is not camel(path)
    form: str | None = None
    help_text: str = ""
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    # The service's words for a broken limit ({path}, {min_value}, {max_value}, {max_length}).
    min_message: str = "{path} must be at least {min_value}"
    max_message: str = "{path} must be at most {max_value}"
    length_message: str = "{path} must be at most {max_length} characters"

    @property
    def rest(self) -> str:
        return self.rest_name or camel(self.path)

    @property
    def key(self) -> str:
        """Its key in its REST object (the last part of `rest`)."""
        return self.rest.rsplit(".", 1)[-1]

    @property
    def form_name(self) -> str:
        return self.form or self.name

    def limits(self) -> dict:
        """The limits that are set, as keyword arguments (DRF and Django form fields name them alike)."""
        limits = {"min_value": self.min_value, "max_value": self.max_value, "max_length": self.max_length}
        return {key: value for key, value in limits.items() if value is not None}

    def _message(self, template: str) -> str:
        return template.format(
            path=self.path, min_value=self.min_value, max_value=self.max_value, max_length=self.max_length
        )

    def min_error(self) -> str:
        return self._message(self.min_message)

    def max_error(self) -> str:
        return self._message(self.max_message)

    def length_error(self) -> str:
        return self._message(self.length_message)


class Shape:
    """The request fields of one resource (or one request), each reachable as an attribute by its
    name: `PROJECT.webhook_url`."""

    def __init__(self, *fields: Field):
        self.fields = fields
        for field in fields:
            setattr(self, field.name, field)

    def __iter__(self):
        return iter(self.fields)

    def form_errors(self) -> dict[str, str]:
        """{error path: form field}: where a page form shows a service's error (projects.forms.add_domain_error)."""
        return {field.path: field.form_name for field in self.fields}

    def from_rest(self, data: dict) -> dict:
        """Validated REST data (nested objects as dicts) as {name: value}, for the fields the request
        carried: an update leaves the others alone."""
        arguments = {}
        for field in self.fields:
            value, present = data, True
            for part in field.rest.split("."):
                if not isinstance(value, dict) or part not in value:
                    present = False
                    break
                value = value[part]
            if present:
                arguments[field.name] = value
        return arguments
