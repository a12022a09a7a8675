"""Forms of the warm pool pages. The sizes' rules are the gitpod.v1 request's, which the views check
on the request message they build (core.validation), and min <= max, the classes a pool may use and
who may change a pool are the services'. The inputs carry the sizes' ranges (read off the same
descriptors) as min and max; the forms check min <= max themselves; every error is in a person's
words (HUMAN), next to the field it concerns, all at once."""

from django import forms
from django.urls import reverse

from core.proto import INT32_MAX, INT32_MIN
from projects.forms import PageForm
from projects.models import EnvironmentClass
from warmpools.shapes import MAX_SIZE_RANGE, MIN_SIZE_RANGE, WARM_POOL


def pool_classes(project) -> list[EnvironmentClass]:
    """Classes a pool of `project` may use: those that get prebuilds on it (the service refuses
    others, and any class while prebuilds are disabled)."""
    if project is None or not project.prebuilds_enabled:
        return []
    return list(project.prebuild_environment_classes.filter(enabled=True))


W = WARM_POOL
MIN_WORDS = "Enter a number of instances from {} to {}.".format(*MIN_SIZE_RANGE)
MAX_WORDS = "Enter a number of instances from {} to {}.".format(*MAX_SIZE_RANGE)
MIN_HELP = "{} to {}; instances kept ready even with no demand.".format(*MIN_SIZE_RANGE)
MAX_HELP = "{} to {}; at least the minimum.".format(*MAX_SIZE_RANGE)


class SizeField(forms.IntegerField):
    """A pool size: any int32 parses (what the request message can hold); its range is the
    descriptor's rule, which the view checks on the request it builds, in `words`. The input carries
    that range (min, max), so the browser holds it too."""

    def __init__(self, *, label, words, bounds, help_text, **kwargs):
        self.bounds = bounds
        messages = {"min_value": words, "max_value": words, "invalid": words}
        super().__init__(
            label=label,
            required=False,
            min_value=INT32_MIN,
            max_value=INT32_MAX,
            help_text=help_text,
            error_messages=messages,
            **kwargs,
        )

    def widget_attrs(self, widget):
        attrs = super().widget_attrs(widget)
        attrs["min"], attrs["max"] = self.bounds
        return attrs


class SizesForm(PageForm):
    """Both pool forms' sizes; the minimum may not exceed the maximum."""

    HUMAN = {"min_size": MIN_WORDS, "max_size": MAX_WORDS}

    def clean(self):
        data = super().clean()
        low, high = data.get("min_size"), data.get("max_size")
        if low is not None and high is not None and low > high:
            self.add_error("min_size", f"The minimum ({low}) cannot be more than the maximum ({high}).")
        return data


class WarmPoolCreateForm(SizesForm):
    FIELD_MAP = W.form_errors()
    HUMAN = {
        **SizesForm.HUMAN,
        "project": "Choose a project from the list.",
        "environment_class": "Choose an environment class that gets prebuilds on the project.",
    }

    project = forms.CharField(
        label="Project", widget=forms.Select, error_messages={"required": "Choose a project from the list."}
    )
    environment_class = forms.CharField(
        label="Environment class",
        widget=forms.Select,
        error_messages={"required": "Choose an environment class that gets prebuilds on the project."},
    )
    min_size = SizeField(
        label="Minimum instances", words=MIN_WORDS, bounds=MIN_SIZE_RANGE, help_text=MIN_HELP, initial=0
    )
    max_size = SizeField(
        label="Maximum instances", words=MAX_WORDS, bounds=MAX_SIZE_RANGE, help_text=MAX_HELP, initial=2
    )

    def __init__(self, *args, projects, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].widget.choices = [(str(p.id), p.name) for p in projects]
        # Changing the project swaps in the classes that get prebuilds on it.
        self.fields["project"].widget.attrs.update(
            {
                "hx-get": reverse("warmpools:classes"),
                "hx-trigger": "change",
                "hx-target": "#class-select",
                "hx-swap": "outerHTML",
            }
        )
        self.set_project(project)

    def set_project(self, project) -> None:
        classes = pool_classes(project)
        self.fields["environment_class"].widget.choices = [(str(c.id), c.display_name) for c in classes]
        if project is not None and not self.is_bound:
            self.initial.setdefault("project", str(project.id))


class WarmPoolResizeForm(SizesForm):
    FIELD_MAP = W.form_errors()

    min_size = SizeField(label="Minimum instances", words=MIN_WORDS, bounds=MIN_SIZE_RANGE, help_text=MIN_HELP)
    max_size = SizeField(label="Maximum instances", words=MAX_WORDS, bounds=MAX_SIZE_RANGE, help_text=MAX_HELP)
