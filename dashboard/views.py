"""The overview, the organization switcher and the API tokens page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from core import words
from core.errors import DomainError, NotFound
from core.lookups import get_by_id
from core.pages import Confirmation, ask, confirmed, domain_errors, unchanged, version_of
from prebuilds.models import Prebuild, PrebuildPhase
from prebuilds.queries import expected_durations
from projects import services as project_services
from projects.forms import ApiTokenForm, add_domain_error
from projects.models import ApiToken, Project
from projects.views import SESSION_ORGANIZATION, current_organization_id, is_admin, memberships
from warmpools.health import diagnose
from warmpools.models import WarmPool, WarmPoolPhase

# How many running prebuilds and failures the overview lists.
OVERVIEW_ROWS = 10


@login_required
def overview(request):
    organization_id = current_organization_id(request)
    prebuilds = Prebuild.objects.visible_to(request.user).filter(organization_id=organization_id)
    by_phase = {row["phase"]: row["n"] for row in prebuilds.values("phase").annotate(n=Count("id")).order_by()}
    pools = list(WarmPool.objects.visible_to(request.user).filter(organization_id=organization_id).for_list())
    pools_by_phase = {phase: sum(1 for p in pools if p.phase == phase) for phase in WarmPoolPhase}
    running = list(prebuilds.non_terminal().for_list().order_by("-created_at")[:OVERVIEW_ROWS])
    failures = list(prebuilds.filter(phase=PrebuildPhase.FAILED).for_list().order_by("-created_at")[:OVERVIEW_ROWS])
    # What the live part shows, as a version: a poll that finds it unchanged is answered with a 204.
    version = version_of(
        sorted(by_phase.items()),
        [(p.id, p.status_version) for p in running],
        [(p.id, p.spec_version, p.status_version, p.hits, p.misses, p.running_instances) for p in pools],
        [p.id for p in failures],
    )
    if request.htmx and request.htmx.target == "overview-live" and (answer := unchanged(request, version)):
        return answer
    estimates = expected_durations(running)
    context = {
        # Only the phases something is in: fourteen zero counts say nothing.
        "prebuild_phases": [
            (phase, by_phase[phase.value])
            for phase in PrebuildPhase
            if phase not in (PrebuildPhase.UNSPECIFIED, PrebuildPhase.DELETED) and by_phase.get(phase.value)
        ],
        "prebuild_total": sum(n for phase, n in by_phase.items() if phase != PrebuildPhase.DELETED),
        "pool_phases": [
            (phase, pools_by_phase[phase])
            for phase in WarmPoolPhase
            if phase not in (WarmPoolPhase.UNSPECIFIED, WarmPoolPhase.DELETED) and pools_by_phase[phase]
        ],
        "running": [(p, estimates.get((p.project_id, p.environment_class_id))) for p in running],
        # Pools a person should look at first: the unhealthy ones, then the rest.
        "pools": [
            (pool, diagnose(pool))
            for pool in sorted(pools, key=lambda p: (p.phase != WarmPoolPhase.DEGRADED, not p.failure_message))
        ],
        "latest_failures": failures,
        "version": version,
        "first_run": _first_run(request, organization_id, by_phase, pools),
    }
    if request.htmx and request.htmx.target == "overview-live":
        return render(request, "dashboard/overview.html#live", context)
    return render(request, "dashboard/overview.html", context)


def _first_run(request, organization_id, by_phase, pools) -> dict | None:
    """What to do next in an organization that has not run a prebuild yet (None once it has)."""
    if by_phase:
        return None
    projects = list(
        Project.objects.alive().filter(organization_id=organization_id).prefetch_related("prebuild_environment_classes")
    )
    return {
        "is_admin": is_admin(request, organization_id),
        "has_project": bool(projects),
        "has_prebuild_classes": any(p.prebuilds_enabled and p.prebuild_environment_classes.all() for p in projects),
        "has_pool": bool(pools),
        "project": projects[0] if projects else None,
    }


@login_required
@require_POST
def switch_organization(request):
    """Remember the chosen organization in the session; lists show that organization's objects."""
    chosen = request.POST.get("organization_id", "")
    membership = next((m for m in memberships(request) if str(m.organization_id) == chosen), None)
    if membership is None:
        messages.error(request, "You are not a member of that organization.")
    else:
        request.session[SESSION_ORGANIZATION] = str(membership.organization_id)
        messages.success(request, f"Now showing {membership.organization.name}.")
    back = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    # A detail page (and a list's filters) belong to the organization just left: go to the list of
    # the same section instead.
    section = back.split("?")[0].strip("/").split("/")[0]
    return redirect(f"/{section}/" if section else "/")


# The session key holding a new token's secret between the POST that created it and the one GET
# that shows it.
SESSION_NEW_TOKEN = "new_api_token_secret"


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    """POST creates a token and redirects (so a reload does not create a second one); the GET that
    follows shows the secret once: it is taken out of the session as it is shown, and only its
    SHA-256 is stored. never_cache keeps that page out of the browser's cache too."""
    if request.method == "POST":
        form = ApiTokenForm(request.POST)
        if form.is_valid():
            try:
                _, secret = project_services.api_token_create(
                    user=request.user, name=form.cleaned_data["name"], expires_in=form.expires_in()
                )
            except DomainError as error:
                add_domain_error(form, error, ApiTokenForm.FIELD_MAP)
            else:
                request.session[SESSION_NEW_TOKEN] = secret
                return redirect("api-tokens")
    else:
        form = ApiTokenForm()
    context = {
        "form": form,
        "secret": request.session.pop(SESSION_NEW_TOKEN, "") if request.method == "GET" else "",
        "tokens": ApiToken.objects.filter(user=request.user),
    }
    return render(request, "dashboard/tokens.html", context)


@login_required
@domain_errors
@require_POST
def api_token_revoke(request, pk):
    try:
        token = get_by_id(ApiToken.objects.all(), pk, label="token", field="token_id")
    except NotFound:
        raise NotFound("token not found") from None
    if token.user_id != request.user.pk:
        raise NotFound("token not found")
    if not confirmed(request):
        return ask(
            request,
            Confirmation(
                title=f"Revoke token {token.name}?",
                action=reverse("api-token-revoke", args=[token.id]),
                button="Revoke token",
                items=[f"{token.name} ({token.prefix}…), created {words.absolute(token.created_at)}"],
                consequence="Every script and client using it is refused from now on; this cannot be undone.",
                back=reverse("api-tokens"),
            ),
        )
    # The service refuses someone else's token with NotFound (a 404 here).
    token = project_services.api_token_revoke(actor=request.user, token=token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("api-tokens")
