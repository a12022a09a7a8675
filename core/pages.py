"""Page helpers every room shares: domain errors as HTTP pages, fragments that stop polling."""

from functools import wraps

from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404
from django.shortcuts import render

from core.errors import DomainError, NotFound, PermissionDenied

# htmx stops polling an element when its request answers with this status.
STOP_POLLING = 286


def domain_errors(view):
    """Turn the services' NotFound and PermissionDenied into 404 and 403 pages (never a 500)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as error:
            raise Http404(error.message) from None
        except PermissionDenied as error:
            raise HttpForbidden(error.message) from None
        except DomainError as error:
            status = 409 if error.code in ("aborted", "already_exists", "failed_precondition") else 400
            return render(request, "error.html", {"message": error.message}, status=status)

    return wrapper


def render_poll(request, template: str, context: dict, *, settled: bool):
    """Render a polled fragment; once nothing shown can change, answer 286 so htmx stops polling."""
    response = render(request, template, context)
    if settled and request.htmx:
        response.status_code = STOP_POLLING
    return response
