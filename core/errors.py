"""Typed domain errors raised by the service layer.

Each interface maps them to its own idiom: a form error, an HTTP status with a message, a Connect
code. They live in core, which imports no app, so that every app can raise them.
"""


class DomainError(Exception):
    """Base class. `field` names the offending input when there is one; `details` are protobuf
    messages that say more, for the Connect API's error details (a rule's violations)."""

    code = "internal"

    def __init__(self, message: str, *, field: str | None = None, details: tuple = ()):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class InvalidArgument(DomainError):
    code = "invalid_argument"


class AlreadyExists(DomainError):
    code = "already_exists"


class FailedPrecondition(DomainError):
    code = "failed_precondition"


class PermissionDenied(DomainError):
    code = "permission_denied"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Conflict(DomainError):
    """A compare-and-swap lost too many times in a row; the caller may retry."""

    code = "aborted"
