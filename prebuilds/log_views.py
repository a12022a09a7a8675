"""The logs endpoint that status.log_url points at. It accepts only a logs token (from
CreatePrebuildLogsToken), never a session: whoever holds the token reads that one prebuild's logs.

GET /logs/<id> with one of:
  ?tail=n | ?after=seq[&limit=n] | ?before=seq[&limit=n]   lines (the default: the first 1,000)
  ?q=text[&after=seq]                                      search: matching sequence numbers, count
  ?outline=1                                               each step's first and last line
Every answer carries the prebuild's phase and status version (read with the line count, in the
same query), so a page that polls the log learns of every status change within one poll.
"""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.errors import Unauthenticated
from prebuilds import logstore
from prebuilds.logtokens import logs_token_verify
from prebuilds.models import TERMINAL_PHASES, Prebuild, PrebuildPhase


def _int_param(request, name: str) -> int | None:
    raw = request.GET.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


@never_cache
@require_GET
def prebuild_logs(request, prebuild_id):
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    try:
        logs_token_verify(token, prebuild_id=prebuild_id)
    except Unauthenticated as exc:
        return _error("unauthenticated", exc.message, 401)
    try:
        after, before, tail = (_int_param(request, n) for n in ("after", "before", "tail"))
        limit = _int_param(request, "limit") or 1000
    except ValueError as exc:
        return _error("invalid_argument", str(exc), 400)
    if sum(x is not None for x in (after, before, tail)) > 1:
        return _error("invalid_argument", "give at most one of after, before and tail", 400)
    query = request.GET.get("q")
    if query is not None:
        if not query.strip():
            return _error("invalid_argument", "q must not be empty", 400)
        if len(query) > logstore.SEARCH_MAX_QUERY:
            return _error("invalid_argument", f"q must be at most {logstore.SEARCH_MAX_QUERY} characters", 400)
        if before is not None or tail is not None:
            return _error("invalid_argument", "a search takes after only", 400)
    # Three columns of one row: every open log panel asks about twice a second, so each query counts.
    row = (
        Prebuild.objects.exclude(phase=PrebuildPhase.DELETED)
        .filter(id=prebuild_id)
        .values_list("phase", "log_last_seq", "status_version")
        .order_by()
        .first()
    )
    if row is None:
        return _error("not_found", f"prebuild {prebuild_id} not found", 404)
    phase, last_seq, status_version = row
    # More can come until the prebuild is terminal (the worker flushes before finishing).
    more = phase not in TERMINAL_PHASES and phase != PrebuildPhase.DELETING
    live_last = last_seq if more else None
    state = {"more": more, "phase": f"PREBUILD_PHASE_{PrebuildPhase(phase).name}", "statusVersion": status_version}
    if query is not None:
        found = logstore.search(prebuild_id, query, after=after or 0, live_last=live_last)
        return JsonResponse(
            {
                "query": query,
                "matches": found.matches,
                "total": found.total,
                "complete": found.complete,
                "last": found.last,
                **state,
            }
        )
    if request.GET.get("outline"):
        steps = logstore.outline(prebuild_id, live_last=live_last)
        return JsonResponse(
            {
                "steps": [{"name": s.name, "first": s.first, "last": s.last, "lines": s.lines} for s in steps],
                "last": max((s.last for s in steps), default=None),
                **state,
            }
        )
    page = logstore.read(prebuild_id, after=after, before=before, tail=tail, limit=limit, live_last=live_last)
    return JsonResponse(
        {"lines": [line.as_json() for line in page.lines], "first": page.first, "last": page.last, **state}
    )
