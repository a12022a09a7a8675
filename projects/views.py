"""Project pages, and the request helpers every page shares (current organization, roles), kept
here because every other room may import this one.

The project page shows the project's prebuilds and pools through its reverse relations
(`project.prebuilds`, `project.warm_pools`), so this room still imports nothing above it.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.errors import DomainError, NotFound, PermissionDenied
from core.pages import Confirmation, ask, confirmed, domain_errors
from projects import services
from projects.forms import ProjectForm, SecretForm, add_domain_error
from projects.models import EnvironmentClass, Membership, Project, Role

SESSION_ORGANIZATION = "organization_id"


# --- request helpers shared by the pages ----------------------------------------------------------


def memberships(request) -> list[Membership]:
    """The user's memberships, by organization name: read once per request, in the same query as
    the roles the services check (User.organization_memberships)."""
    return request.user.organization_memberships


def current_membership(request) -> Membership | None:
    """The membership of the organization chosen in the switcher, else the first one by name."""
    all_memberships = memberships(request)
    chosen = request.session.get(SESSION_ORGANIZATION)
    for membership in all_memberships:
        if str(membership.organization_id) == chosen:
            return membership
    return all_memberships[0] if all_memberships else None


def current_organization(request):
    membership = current_membership(request)
    return membership.organization if membership else None


def current_organization_id(request):
    """For filtering lists: None matches nothing, so a user in no organization sees empty lists."""
    membership = current_membership(request)
    return membership.organization_id if membership else None


def is_admin(request, organization_id) -> bool:
    """Whether to show admin-only buttons. The services check again on every write."""
    return request.user.organization_roles.get(organization_id) == Role.ADMIN


# --- project pages --------------------------------------------------------------------------------


@login_required
def project_list(request):
    organization_id = current_organization_id(request)
    projects = (
        Project.objects.alive()
        .filter(organization_id=organization_id)
        .select_related("default_environment_class", "executor")
        .prefetch_related("prebuild_environment_classes")
    )
    return render(
        request, "projects/list.html", {"projects": projects, "can_create": is_admin(request, organization_id)}
    )


def _form_kwargs(organization_id) -> dict:
    classes = EnvironmentClass.objects.in_organization(organization_id).select_related("runner")
    members = [m.user for m in Membership.objects.filter(organization_id=organization_id).select_related("user")]
    return {"classes": classes, "members": sorted(members, key=lambda u: u.get_username())}


@login_required
@never_cache
@domain_errors
@require_http_methods(["GET", "POST"])
def project_create(request):
    """A new project of the current organization (admins). Its webhook secret is shown once, on the
    page that follows, as when it is rotated."""
    organization = current_organization(request)
    if organization is None or not is_admin(request, organization.id):
        raise PermissionDenied("only organization admins may create projects")
    form = ProjectForm(request.POST or None, **_form_kwargs(organization.id))
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(actor=request.user, organization=organization, **form.service_arguments())
        except (NotFound, PermissionDenied):
            raise
        except DomainError as error:
            add_domain_error(form, error, ProjectForm.FIELD_MAP)
        else:
            messages.success(request, f"Project {project.name} created.")
            context = {"project": project, "secret": services.webhook_secret(project), "created": True}
            return render(request, "projects/webhook_secret.html", context)
    return render(request, "projects/form.html", {"form": form})


@login_required
@domain_errors
@require_http_methods(["GET", "POST"])
def project_detail(request, pk):
    project = services.project_get(user=request.user, project_id=pk)
    can_edit = is_admin(request, project.organization_id)
    pools = list(project.warm_pools.kept().select_related("environment_class"))
    form_kwargs = {**_form_kwargs(project.organization_id), "project": project, "pools": pools}
    saved, saved_note = False, ""
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("only organization admins may edit projects")
        form = ProjectForm(request.POST, **form_kwargs)
        if form.is_valid():
            before = set(project.prebuild_environment_classes.values_list("id", flat=True))
            before = before if project.prebuilds_enabled else set()
            doomed = [pool for pool in pools if pool.environment_class_id in form.classes_losing_prebuilds(before)]
            if doomed and not confirmed(request):
                return ask(request, _pool_deletion_confirmation(request, project, doomed))
            try:
                project = services.project_update(actor=request.user, project=project, **form.service_arguments())
                saved = True
            except (NotFound, PermissionDenied):
                raise
            except DomainError as error:
                add_domain_error(form, error, ProjectForm.FIELD_MAP)
            if saved:
                pools = list(project.warm_pools.kept().select_related("environment_class"))
                form_kwargs["pools"] = pools
                saved_note = "Saved."
                if doomed:
                    names = " and ".join(pool.environment_class.display_name for pool in doomed)
                    pools_are = "warm pools of {} are" if len(doomed) > 1 else "warm pool of {} is"
                    saved_note += f" The {pools_are.format(names)} being deleted."
        if saved and not request.htmx:
            messages.success(request, saved_note)
            return redirect("projects:detail", pk=project.pk)
    if request.method == "GET" or saved:
        initial = ProjectForm.initial_for(project, project.prebuild_environment_classes.values_list("id", flat=True))
        form = ProjectForm(initial=initial, **form_kwargs)
    context = {
        "project": project,
        "form": form,
        "can_edit": can_edit,
        "saved": saved,
        "saved_note": saved_note,
        "enabled_classes": list(project.prebuild_environment_classes.all()),
        # Oldest first, so the chart reads left to right in time.
        "recent_prebuilds": list(
            reversed(project.prebuilds.not_deleted().select_related("environment_class").order_by("-created_at")[:30])
        ),
        "pools": project.warm_pools.not_deleted().select_related("environment_class", "snapshot"),
    }
    if request.htmx and request.method == "POST":
        return render(request, "projects/detail.html#configuration", context)
    return render(request, "projects/detail.html", context)


def _pool_deletion_confirmation(request, project, doomed) -> Confirmation:
    """Saving this configuration deletes pools: say which, before anything is saved."""
    items = [
        f"The warm pool of {project.name} on {pool.environment_class.display_name} "
        f"({pool.running_instances} running, {pool.stopped_instances} stopped instances)"
        for pool in doomed
    ]
    fields = [
        (name, value) for name, values in request.POST.lists() if name != "csrfmiddlewaretoken" for value in values
    ]
    one = len(doomed) == 1
    return Confirmation(
        title=f"Save and delete {'a warm pool' if one else f'{len(doomed)} warm pools'}?",
        action=reverse("projects:detail", args=[project.pk]),
        button=f"Save and delete {'the pool' if one else 'the pools'}",
        items=items,
        consequence=(
            "These classes stop getting prebuilds, so their pools go: their instances are drained, and new "
            "environments of them start from a snapshot or from scratch."
        ),
        fields=fields,
        keep="Do not save",
        back=reverse("projects:detail", args=[project.pk]),
        target="#configuration",
    )


@login_required
@domain_errors
@require_POST
def project_delete(request, pk):
    project = services.project_get(user=request.user, project_id=pk)
    if not is_admin(request, project.organization_id):
        raise PermissionDenied("only organization admins may delete projects")
    if not confirmed(request):
        pools = list(project.warm_pools.kept().select_related("environment_class"))
        prebuilds = project.prebuilds.not_deleted().count()
        items = [f"The project {project.name} ({project.repository_url})"]
        items += [f"The warm pool on {pool.environment_class.display_name}" for pool in pools]
        if prebuilds:
            items.append(
                f"No new prebuilds: its {prebuilds} prebuild{'s' if prebuilds != 1 else ''} stay until they expire"
            )
        return ask(
            request,
            Confirmation(
                title=f"Delete project {project.name}?",
                action=reverse("projects:delete", args=[pk]),
                button="Delete project",
                items=items,
                consequence="Its schedule and webhook stop; this cannot be undone from the dashboard.",
                back=reverse("projects:detail", args=[pk]),
                target="body",
            ),
        )
    services.project_delete(actor=request.user, project=project)
    messages.success(request, f"Project {project.name} deleted.")
    url = reverse("projects:list")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@login_required
@never_cache
@domain_errors
@require_POST
def project_webhook_secret(request, pk):
    """Rotate the project's webhook secret (after a confirmation: the old one stops working) and show
    the new one in this response, once: it is not kept in the session or anywhere else, and no page
    shows it again (rotate again if it is lost)."""
    project = services.project_get(user=request.user, project_id=pk)
    if not is_admin(request, project.organization_id):
        raise PermissionDenied("only organization admins may rotate webhook secrets")
    if not confirmed(request):
        return ask(
            request,
            Confirmation(
                title="Rotate the webhook secret?",
                action=reverse("projects:webhook-secret", args=[pk]),
                button="Rotate secret",
                items=[f"The webhook secret of {project.name}"],
                consequence="The current secret stops signing at once: receivers must be given the new one.",
                back=reverse("projects:detail", args=[pk]),
            ),
        )
    secret = services.project_rotate_webhook_secret(actor=request.user, project=project)
    return render(request, "projects/webhook_secret.html", {"project": project, "secret": secret})


# --- secrets --------------------------------------------------------------------------------------
# One pair of views for both owners: a project's secrets (/projects/<pk>/secrets/) and the current
# organization's (/projects/organization/secrets/). Names and scopes for members; add, replace and
# delete (after a confirmation) for admins. No value is ever rendered.


def _secret_owner(request, pk):
    """(owner kwargs for the services, page title, this page's URL, organization id)."""
    if pk is None:
        organization = current_organization(request)
        if organization is None:
            raise NotFound("no organization")
        return (
            {"organization": organization},
            f"Secrets of {organization.name}",
            reverse("projects:org-secrets"),
            organization.id,
        )
    project = services.project_get(user=request.user, project_id=pk)
    return (
        {"project": project},
        f"Secrets of {project.name}",
        reverse("projects:secrets", args=[pk]),
        project.organization_id,
    )


@login_required
@never_cache
@domain_errors
@require_http_methods(["GET", "POST"])
def secrets_page(request, pk=None):
    owner, title, url, organization_id = _secret_owner(request, pk)
    can_edit = is_admin(request, organization_id)
    form = SecretForm(request.POST or None)
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied("only organization admins may change secrets")
        if form.is_valid():
            try:
                secret = services.secret_set(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    value=form.cleaned_data["value"],
                    scope=form.cleaned_data["scope"],
                    **owner,
                )
            except (NotFound, PermissionDenied):
                raise
            except DomainError as error:
                add_domain_error(form, error, {"name": "name", "value": "value", "scope": "scope"})
            else:
                messages.success(request, f"Secret {secret.name} saved.")
                return redirect(url)
    context = {
        "title": title,
        "url": url,
        "project": owner.get("project"),
        "form": form,
        "can_edit": can_edit,
        "secrets": services.secrets_list(user=request.user, **owner),
        "changes": services.secret_changes(user=request.user, **owner)[:50],
    }
    return render(request, "projects/secrets.html", context)


@login_required
@domain_errors
@require_POST
def secret_delete(request, secret_id, pk=None):
    owner, title, url, organization_id = _secret_owner(request, pk)
    secret = services.secret_get(user=request.user, secret_id=secret_id, **owner)
    if not is_admin(request, organization_id):
        raise PermissionDenied("only organization admins may change secrets")
    if not confirmed(request):
        return ask(
            request,
            Confirmation(
                title=f"Delete secret {secret.name}?",
                action=request.path,
                button="Delete secret",
                items=[f"The secret {secret.name} ({secret.get_scope_display()})"],
                consequence="Prebuilds and environments started from now on no longer get it.",
                back=url,
                target="body",
            ),
        )
    services.secret_delete(actor=request.user, secret=secret)
    messages.success(request, f"Secret {secret.name} deleted.")
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
