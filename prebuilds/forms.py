"""Forms of the prebuild pages: the list's filters and the trigger form.

The trigger form parses only (the timeout's syntax); the view checks the CreatePrebuildRequest it
makes of it by the descriptor's rules (the timeout's range, the ids) as the APIs do, and which
project and class are allowed is decided by prebuilds.services.prebuild_create; each message is
shown next to its field.
"""

from django import forms
from django.conf import settings
from django.urls import reverse

from prebuilds.models import PrebuildPhase, PrebuildTrigger
from prebuilds.queries import PrebuildFilter
from prebuilds.shapes import CREATE_PREBUILD
from projects.forms import DurationField, PageForm, format_duration
from projects.models import EnvironmentClass

# Phases a person can filter on (DELETED prebuilds are never listed).
FILTER_PHASES = [p for p in PrebuildPhase if p not in (PrebuildPhase.UNSPECIFIED, PrebuildPhase.DELETED)]


def trigger_classes(project) -> list[EnvironmentClass]:
    """The classes a prebuild of `project` may run on: its default class first, then the classes
    that get prebuilds on it; disabled classes are left out (the service refuses them)."""
    if project is None:
        return []
    classes = list(project.prebuild_environment_classes.filter(enabled=True))
    default = project.default_environment_class
    if default is not None and default.enabled:
        classes = [default] + [c for c in classes if c.id != default.id]
    return classes


class PrebuildFilterForm(PageForm):
    project = forms.ChoiceField(label="Project", required=False)
    environment_class = forms.ChoiceField(label="Environment class", required=False)
    phase = forms.TypedChoiceField(label="Phase", required=False, coerce=int, empty_value=None)
    trigger = forms.TypedChoiceField(label="Trigger", required=False, coerce=int, empty_value=None)
    creator = forms.ChoiceField(label="Creator", required=False)

    def __init__(self, *args, projects, classes, creators, **kwargs):
        # Its own ids: the trigger form on the same page has fields of the same names.
        kwargs.setdefault("auto_id", "filter-%s")
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "All projects")] + [(str(p.id), p.name) for p in projects]
        self.fields["environment_class"].choices = [("", "All classes")] + [
            (str(c.id), c.display_name) for c in classes
        ]
        self.fields["phase"].choices = [("", "All phases")] + [(p.value, p.label) for p in FILTER_PHASES]
        self.fields["trigger"].choices = [("", "Any trigger")] + [
            (t.value, t.label) for t in PrebuildTrigger if t != PrebuildTrigger.UNSPECIFIED
        ]
        self.fields["creator"].choices = [("", "Anyone")] + [(str(u.id), u.get_username()) for u in creators]

    def to_filter(self) -> PrebuildFilter:
        """The valid filters (an invalid one is reported on the form and ignored)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})

        def one(name):
            value = data.get(name)
            return [value] if value not in (None, "") else []

        return PrebuildFilter(
            project_ids=one("project"),
            environment_class_ids=one("environment_class"),
            phases=one("phase"),
            triggered_by=one("trigger"),
            creator_ids=one("creator"),
        )

    def is_filtered(self) -> bool:
        return any(getattr(self, "cleaned_data", {}).get(name) not in (None, "") for name in self.fields)


class TriggerPrebuildForm(PageForm):
    """Project and environment class are plain values rendered as selects: the request's rules and
    the service decide whether they are allowed, so a form and the API refuse the same things (the
    form in a person's words, HUMAN). An empty timeout is the project's own."""

    FIELD_MAP = CREATE_PREBUILD.form_errors()
    # A person's words for the request's rules (PrebuildSpec.timeout 300s..7200s, UUIDs).
    HUMAN = {
        "timeout": "Enter a timeout from 5 minutes to 2 hours, such as 30m or 1h.",
        "project": "Choose a project from the list.",
        "environment_class": "Choose an environment class from the list.",
    }

    project = forms.CharField(label="Project", widget=forms.Select)
    environment_class = forms.CharField(label="Environment class", required=False, widget=forms.Select)
    timeout = DurationField(label="Timeout", required=False)

    def __init__(self, *args, projects, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].widget.choices = [(str(p.id), p.name) for p in projects]
        # Changing the project swaps in that project's classes.
        self.fields["project"].widget.attrs.update(
            {
                "hx-get": reverse("prebuilds:trigger-classes"),
                "hx-trigger": "change",
                "hx-target": "#class-select",
                "hx-swap": "outerHTML",
            }
        )
        self.set_project(project)

    def set_project(self, project) -> None:
        """Offer the classes of the chosen project (refreshed with HTMX when the project changes)."""
        classes = trigger_classes(project)
        default_id = project.default_environment_class_id if project else None
        self.fields["environment_class"].widget.choices = [
            (str(c.id), f"{c.display_name} (default)" if c.id == default_id else c.display_name) for c in classes
        ]
        if project is not None and not self.is_bound:
            self.initial.setdefault("project", str(project.id))
            self.initial["environment_class"] = str(classes[0].id) if classes else ""
        # Empty means the project's own timeout, and the field says which that is.
        self.project = project
        self.fields["timeout"].help_text = timeout_help(project)

    def timeout_for(self, project):
        """The timeout the prebuild gets: the one entered, else the project's (never a site default
        the project's admin did not choose)."""
        entered = getattr(self, "cleaned_data", {}).get("timeout")
        return entered if entered is not None else project.prebuild_timeout


def timeout_help(project) -> str:
    low, high = settings.PROJECT_MIN_PREBUILD_TIMEOUT, settings.PREBUILD_MAX_TIMEOUT
    limits = f"{format_duration(low)} to {format_duration(high)}"
    if project is None:
        return f"Minutes, or 30m, 1h; {limits}."
    return f"Empty: the project's timeout, {format_duration(project.prebuild_timeout)}. Or minutes, 30m, 1h; {limits}."
