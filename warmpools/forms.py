"""Forms of the warm pool pages. They parse numbers only: the sizes' rules are the gitpod.v1
request's, which the views check on the request message they build (core.validation), and min <=
max, the classes a pool may use and who may change a pool are the services'; each error is shown
next to the field it concerns."""

from django import forms
from django.urls import reverse

from core.proto import INT32_MAX, INT32_MIN
from projects.forms import PageForm
from projects.models import EnvironmentClass
from warmpools.shapes import MAX_SIZE_RANGE, WARM_POOL


def pool_classes(project) -> list[EnvironmentClass]:
    """Classes a pool of `project` may use: those that get prebuilds on it (the service refuses
    others, and any class while prebuilds are disabled)."""
    if project is None or not project.prebuilds_enabled:
        return []
    return list(project.prebuild_environment_classes.filter(enabled=True))


W = WARM_POOL
MAX_HELP = f"At most {MAX_SIZE_RANGE[1]}."
# What an int32 field of the request can hold at all.
INT32 = {"min_value": INT32_MIN, "max_value": INT32_MAX}


class WarmPoolCreateForm(PageForm):
    FIELD_MAP = W.form_errors()

    project = forms.CharField(label="Project", widget=forms.Select)
    environment_class = forms.CharField(label="Environment class", required=False, widget=forms.Select)
    min_size = forms.IntegerField(label="Minimum instances", required=False, initial=0, **INT32)
    max_size = forms.IntegerField(label="Maximum instances", required=False, initial=2, help_text=MAX_HELP, **INT32)

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


class WarmPoolResizeForm(PageForm):
    FIELD_MAP = W.form_errors()

    min_size = forms.IntegerField(label="Minimum instances", required=False, **INT32)
    max_size = forms.IntegerField(label="Maximum instances", required=False, help_text=MAX_HELP, **INT32)
