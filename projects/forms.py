"""Dashboard forms for projects and API tokens, and the helpers every page form shares.

Forms parse what a person typed. The rules (which classes are allowed, who may do what, every
limit) live in the services, and a service's DomainError is shown next to the field it names. A
page that does what a gitpod.v1 method does builds that method's request message and checks it as
the APIs do (`add_violations`), so its fields have the descriptor's rules.

The APIs say what broke in their own terms ("spec.timeout: value must be ..."), which is right for
a program; a page says it to a person. So each page form has HUMAN: for a field, the words a person
reads when any descriptor rule of that field is broken ("Enter a timeout from 5 minutes to 2
hours"); the check is the same, only the words differ. (The services' own messages already speak
of the things, not the fields: "environment class 'gpu' does not have prebuilds enabled ...".)

A form checks its fields' own rules itself, with the declared limits (`limits`, from the request
shapes: projects/shapes.py and its kin), so that every field's error shows at once rather than the
service's first; the inputs carry the same limits (`min`, `max`, `maxlength`), so the browser holds
them too. The service checks everything again.
"""

import re
from datetime import timedelta

from django import forms
from django.conf import settings

from core.errors import DomainError
from core.shapes import Field
from core.validation import violations
from projects.models import SecretScope
from projects.shapes import PROJECT

_DURATION = re.compile(r"^(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m(?:in)?)?\s*(?:(?P<s>\d+)\s*s)?$", re.IGNORECASE)
DURATION_HELP = "Minutes, or a duration such as 30m, 1h or 1h30m."


def parse_duration(text: str) -> timedelta | None:
    """'45' (minutes), '30m', '1h', '1h30m', '90s' -> timedelta; '' -> None; anything else -> ValueError.
    Ranges are not checked here: that is the service's job."""
    text = (text or "").strip()
    if not text:
        return None
    if text.isdigit():
        return timedelta(minutes=int(text))
    match = _DURATION.match(text)
    if not match or not any(match.groupdict().values()):
        raise ValueError(text)
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    return timedelta(hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def format_duration(value: timedelta | None) -> str:
    """The inverse of parse_duration, for prefilling a field: 1:30:00 -> '1h30m'."""
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0m"


class DurationField(forms.CharField):
    """Text in, timedelta (or None) out; only the syntax is checked."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", DURATION_HELP)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return format_duration(value) if isinstance(value, timedelta) else value

    def to_python(self, value):
        text = super().to_python(value)
        try:
            return parse_duration(text)
        except ValueError:
            raise forms.ValidationError("Enter minutes or a duration such as 30m or 1h.", code="invalid") from None


def _words(form: forms.Form, field: str | None, text: str) -> str:
    """The form's words for a broken rule of `field` (its HUMAN entry), else the rule's own."""
    return getattr(form, "HUMAN", {}).get(field, text)


def add_domain_error(form: forms.Form, error: DomainError, field_map: dict[str, str]) -> None:
    """Show a service's error next to the form field it concerns (its DomainError.field, in the API's
    naming), or above the form when it concerns none of them."""
    field = field_map.get(error.field or "")
    field = field if field in form.fields else None
    if field is not None and form.has_error(field):
        return  # the form already said what is wrong with it, in a person's words
    form.add_error(field, error.message)


def add_violations(form: forms.Form, message, field_map: dict[str, str]) -> bool:
    """Check a request message by its descriptor's rules (core.validation), each violation shown next
    to the form field of its path (once per field); True when there is none."""
    found = violations(message)
    for path, text in found:
        field = field_map.get(path)
        if field in form.fields:
            if not form.has_error(field):
                form.add_error(field, _words(form, field, text))
        else:
            form.add_error(None, f"{path}: {text}")
    return not found


class PageForm(forms.Form):
    """Labels read exactly as written ("Project", not "Project:")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def limits(field: Field, words: str) -> dict:
    """Form field options for a declared field: its limits (which Django also writes into the input
    as min, max and maxlength), refused in a person's `words`."""
    options = field.limits()
    options["error_messages"] = {key: words for key in options}
    return options


F = PROJECT
_HOUR = F.daily_schedule_hour_utc
TIMEOUT_WORDS = "Enter a timeout from 5 minutes to 2 hours, such as 30m or 1h."


class ProjectForm(PageForm):
    """A project as an admin creates or edits it: the repository, then its prebuild configuration.

    Every field's own rule is checked here, in a person's words, so that all that is wrong shows at
    once; the service checks everything again (and what needs the database: the local repository
    roots, the executor's membership, a unique name), and its errors land next to their fields."""

    FIELD_MAP = F.form_errors()

    name = forms.CharField(
        label="Name", max_length=F.name.max_length, error_messages={"required": "Enter a name for the project."}
    )
    repository_url = forms.CharField(
        label="Repository",
        max_length=F.repository_url.max_length,
        help_text="An https:// URL of a git repository (or, where the site allows it, a local path).",
        error_messages={"required": "Enter the repository's URL."},
    )
    branch = forms.CharField(label="Branch", required=False, max_length=F.branch.max_length, initial="main")
    devcontainer_path = forms.CharField(
        label="devcontainer.json",
        required=False,
        max_length=F.devcontainer_path.max_length,
        initial=".devcontainer/devcontainer.json",
        help_text="Its path in the repository; if it is not there, .devcontainer.json is tried.",
    )
    default_environment_class = forms.ChoiceField(label="Default environment class", required=False)
    access_token = forms.CharField(
        label="Access token",
        required=False,
        max_length=F.access_token.max_length,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="For a private repository: sent to git only through its environment. Never shown again.",
    )
    clear_access_token = forms.BooleanField(label="Remove the access token", required=False)
    webhook_url = forms.CharField(
        label="Webhook URL",
        required=False,
        max_length=F.webhook_url.max_length,
        help_text="Told of every prebuild that finishes, signed with the project's webhook secret.",
    )
    prebuilds_enabled = forms.BooleanField(label="Prebuilds enabled", required=False)
    prebuild_environment_classes = forms.MultipleChoiceField(
        label="Environment classes that get prebuilds", required=False, widget=forms.CheckboxSelectMultiple
    )
    prebuild_timeout = DurationField(
        label="Timeout",
        initial=timedelta(hours=1),
        help_text="5 minutes to 2 hours, such as 30m or 1h30m.",
        error_messages={"required": TIMEOUT_WORDS},
    )
    daily_schedule_hour_utc = forms.IntegerField(
        label="Daily prebuild at (hour, UTC)",
        required=False,
        help_text=f"{_HOUR.min_value} to {_HOUR.max_value}; empty for no daily prebuild.",
        **limits(_HOUR, f"Enter an hour from {_HOUR.min_value} to {_HOUR.max_value}, or leave it empty."),
    )
    executor = forms.ChoiceField(label="Executor", required=False)

    def __init__(self, *args, classes, members, project=None, pools=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        classes = list(classes)
        self.fields["default_environment_class"].choices = [("", "None")] + [
            (str(c.id), c.display_name) for c in classes
        ]
        self.fields["prebuild_environment_classes"].choices = [(str(c.id), c.display_name) for c in classes]
        self.fields["executor"].choices = [("", "The person who triggers (default)")] + [
            (str(u.id), u.get_username()) for u in members
        ]
        if project is None:
            del self.fields["clear_access_token"]
        else:
            self.fields["access_token"].help_text = (
                "Set: enter a new one to replace it. " if project.access_token else "None set. "
            ) + "Sent to git only through its environment; never shown."
            if not project.access_token:
                del self.fields["clear_access_token"]
        pooled = sorted({pool.environment_class.display_name for pool in pools})
        if pooled:
            # Said before saving, and asked again when saving would do it.
            self.fields["prebuild_environment_classes"].help_text = (
                f"With a warm pool: {', '.join(pooled)}. Unticking such a class, or disabling prebuilds, "
                "deletes its pool (you are asked first)."
            )

    @classmethod
    def initial_for(cls, project, class_ids) -> dict:
        return {
            "name": project.name,
            "repository_url": project.repository_url,
            "branch": project.branch,
            "devcontainer_path": project.devcontainer_path,
            "default_environment_class": str(project.default_environment_class_id or ""),
            "webhook_url": project.webhook_url,
            "prebuilds_enabled": project.prebuilds_enabled,
            "prebuild_environment_classes": [str(i) for i in class_ids],
            "prebuild_timeout": project.prebuild_timeout,
            "daily_schedule_hour_utc": project.daily_schedule_hour_utc,
            "executor": str(project.executor_id) if project.executor_id else "",
        }

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name for the project.")
        return name

    def clean_repository_url(self):
        url = self.cleaned_data["repository_url"].strip()
        if "://" in url and not url.startswith(("https://", "http://", "file://")):
            raise forms.ValidationError("Enter an https:// URL of a git repository.")
        return url

    def clean_branch(self):
        branch = self.cleaned_data["branch"].strip() or "main"
        if branch.startswith("-") or any(c.isspace() for c in branch):
            raise forms.ValidationError("Enter a branch name without spaces, such as main.")
        return branch

    def clean_devcontainer_path(self):
        path = self.cleaned_data["devcontainer_path"].strip() or ".devcontainer/devcontainer.json"
        if path.startswith("/") or ".." in path.split("/"):
            raise forms.ValidationError("Enter a path inside the repository, such as .devcontainer/devcontainer.json.")
        return path

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if url and not url.startswith(("https://", "http://")):
            raise forms.ValidationError("Enter an https:// (or http://) URL, or leave it empty.")
        return url

    def clean_prebuild_timeout(self):
        timeout = self.cleaned_data["prebuild_timeout"]
        if timeout is None or not settings.PROJECT_MIN_PREBUILD_TIMEOUT <= timeout <= settings.PREBUILD_MAX_TIMEOUT:
            raise forms.ValidationError(TIMEOUT_WORDS)
        return timeout

    def service_arguments(self) -> dict:
        """project_create's (and project_update's) arguments, ids as chosen (the choices offer the
        organization's only, and the service checks again). An empty access token on an edit keeps
        the one the project has, unless removing it was asked for."""
        data = self.cleaned_data
        arguments = {
            F.name.name: data["name"],
            F.repository_url.name: data["repository_url"],
            F.branch.name: data["branch"],
            F.devcontainer_path.name: data["devcontainer_path"],
            F.default_environment_class_id.name: data["default_environment_class"] or None,
            F.webhook_url.name: data["webhook_url"],
            F.prebuilds_enabled.name: data["prebuilds_enabled"],
            F.prebuild_environment_class_ids.name: data["prebuild_environment_classes"],
            F.prebuild_timeout.name: data["prebuild_timeout"],
            F.daily_schedule_hour_utc.name: data["daily_schedule_hour_utc"],
            F.executor_id.name: data["executor"] or None,
        }
        if data["access_token"]:
            arguments[F.access_token.name] = data["access_token"]
        elif self.project is None or data.get("clear_access_token"):
            arguments[F.access_token.name] = ""
        return arguments

    def classes_losing_prebuilds(self, before: set) -> set:
        """Of the class ids that get prebuilds now (`before`), those that would not after saving."""
        data = self.cleaned_data
        after = set(data["prebuild_environment_classes"]) if data["prebuilds_enabled"] else set()
        return {class_id for class_id in before if str(class_id) not in after}


class ApiTokenForm(PageForm):
    FIELD_MAP = {"name": "name", "expires_in": "expires_in_days"}

    DAYS = "Enter a number of days from 1 to 3650 (ten years), or leave it empty."

    name = forms.CharField(
        label="Name",
        max_length=100,
        required=False,
        help_text="What it is for, such as ci.",
        error_messages={"max_length": "Use at most 100 characters."},
    )
    expires_in_days = forms.IntegerField(
        label="Expires in (days)",
        required=False,
        min_value=1,
        max_value=3650,
        help_text="1 to 3650; empty for a token that does not expire.",
        error_messages={"min_value": DAYS, "max_value": DAYS, "invalid": DAYS},
    )

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Enter a name for the token.")
        return name

    def expires_in(self) -> timedelta | None:
        days = self.cleaned_data["expires_in_days"]
        return None if days is None else timedelta(days=days)


class SecretForm(PageForm):
    """Add a secret, or replace the value (and scope) of the one of that name. The value field is a
    password input that never renders what was typed, so a page redisplayed after an error does not
    carry it back; the services validate."""

    name = forms.CharField(label="Name", max_length=128, help_text="An environment variable name, e.g. NPM_TOKEN")
    value = forms.CharField(
        label="Value", widget=forms.PasswordInput(render_value=False), strip=False, help_text="Write-only"
    )
    scope = forms.ChoiceField(label="Available in", choices=SecretScope.choices, initial=SecretScope.BOTH)

    def __repr__(self):
        return "<SecretForm>"  # never the bound value
