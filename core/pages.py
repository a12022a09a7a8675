"""Page helpers every room shares: domain errors as HTTP pages, fragments that stop polling,
polled fragments that cost a version check when nothing changed, and the confirmation every
destructive action asks for first.
"""

import hashlib
from dataclasses import dataclass, field
from functools import wraps

from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django_htmx.http import reswap, retarget

from core.errors import DomainError, NotFound, PermissionDenied

# htmx stops polling an element when its request answers with this status.
STOP_POLLING = 286
# ...and swaps nothing (but goes on polling) when it answers with this one.
NOTHING_NEW = 204
# The request header a polled fragment sends with the version of what it shows.
VERSION_HEADER = "X-Shown-Version"


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


def version_of(*parts) -> str:
    """A short digest of what a fragment shows (ids and version counters, counts), as its version."""
    digest = hashlib.blake2b(digest_size=9)
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def unchanged(request, version: str) -> HttpResponse | None:
    """A list that refreshes while it is open (new rows included) asks every few seconds; what it
    shows carries its version, and it sends it back. When the version is the same, the answer is
    an empty 204 (htmx swaps nothing and keeps polling) instead of a render of the same rows."""
    if request.htmx and request.headers.get(VERSION_HEADER) == version:
        return HttpResponse(status=NOTHING_NEW)
    return None


# --- confirmations ---------------------------------------------------------------------------------


@dataclass
class Confirmation:
    """What a destructive action asks before it happens: a title, what exactly will go (one line
    each), what follows from it, and the button that does it. The form posts the same fields again
    with `confirmed=yes`, to the same URL, swapping its answer where the original request would."""

    title: str
    action: str  # the URL the confirmed form posts to
    button: str
    items: list[str] = field(default_factory=list)
    consequence: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)  # hidden (name, value) pairs
    keep: str = "Keep it"
    back: str = ""  # where "keep" goes without JavaScript
    target: str = ""  # htmx: the element the confirmed answer replaces (none: a full page load)
    swap: str = "outerHTML"
    danger: bool = True


CONFIRMED = "confirmed"


def confirmed(request) -> bool:
    return request.POST.get(CONFIRMED) == "yes"


def ask(request, confirmation: Confirmation) -> HttpResponse:
    """The confirmation: in the page's dialog (htmx), or as a page of its own (without JavaScript)."""
    context = {"confirm": confirmation}
    if request.htmx:
        response = render(request, "components/confirm.html#dialog", context)
        return reswap(retarget(response, "#confirm-dialog"), "innerHTML")
    return render(request, "confirm.html", context)
