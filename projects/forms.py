"""Dashboard forms for projects and API tokens, and the helpers every page form shares.

Forms parse what a person typed. The rules (which classes are allowed, who may do what, every
limit) live in the services, and a service's DomainError is shown next to the field it names, so a
form says exactly what the API says. A form may check a declared limit first (`limits`, from the
request shapes: projects/shapes.py and its kin), in the service's own words. A page that does what
a gitpod.v1 method does builds that method's request message and checks it as the APIs do
(`add_violations`), so its fields have the descriptor's rules in protovalidate's words.
"""

import re
from datetime import timedelta

from django import forms

from core.errors import DomainError
from core.shapes import Field
from core.validation import violations
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


def add_domain_error(form: forms.Form, error: DomainError, field_map: dict[str, str]) -> None:
    """Show a service's error next to the form field it concerns (its DomainError.field, in the API's
    naming), or above the form when it concerns none of them."""
    field = field_map.get(error.field or "")
    form.add_error(field if field in form.fields else None, error.message)


def add_violations(form: forms.Form, message, field_map: dict[str, str]) -> bool:
    """Check a request message by its descriptor's rules (core.validation), each violation shown next
    to the form field of its path; True when there is none."""
    found = violations(message)
    for path, text in found:
        field = field_map.get(path)
        if field in form.fields:
            form.add_error(field, text)
        else:
            form.add_error(None, f"{path}: {text}")
    return not found


class PageForm(forms.Form):
    """Labels read exactly as written ("Project", not "Project:")."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def limits(field: Field) -> dict:
    """Form field options for a declared field: its limits, refused in the service's own words, so
    the form and the APIs say the same (a field whose limits no service checks keeps Django's)."""
    options = field.limits()
    messages = {"min_value": field.min_error(), "max_value": field.max_error(), "max_length": field.length_error()}
    options["error_messages"] = {key: messages[key] for key in options}
    return options


F = PROJECT


class ProjectConfigurationForm(PageForm):
    """A project's prebuild configuration, as an admin edits it on the project page."""

    FIELD_MAP = F.form_errors()

    prebuilds_enabled = forms.BooleanField(label="Prebuilds enabled", required=False)
    prebuild_environment_classes = forms.MultipleChoiceField(
        label="Environment classes", required=False, widget=forms.CheckboxSelectMultiple
    )
    prebuild_timeout = DurationField(label="Timeout", required=False)
    daily_schedule_hour_utc = forms.IntegerField(
        label="Daily prebuild at (hour, UTC)",
        required=False,
        help_text=f"{F.daily_schedule_hour_utc.min_value}-{F.daily_schedule_hour_utc.max_value}; "
        "empty for no daily prebuild.",
        **limits(F.daily_schedule_hour_utc),
    )
    executor = forms.ChoiceField(label="Executor", required=False)
    # No service checks the URL's length (the column does): Django's own words.
    webhook_url = forms.CharField(label="Webhook URL", required=False, max_length=F.webhook_url.max_length)

    def __init__(self, *args, classes, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["prebuild_environment_classes"].choices = [(str(c.id), c.display_name) for c in classes]
        self.fields["executor"].choices = [("", "The person who triggers (default)")] + [
            (str(u.id), u.get_username()) for u in members
        ]

    @classmethod
    def initial_for(cls, project, class_ids) -> dict:
        return {
            "prebuilds_enabled": project.prebuilds_enabled,
            "prebuild_environment_classes": [str(i) for i in class_ids],
            "prebuild_timeout": project.prebuild_timeout,
            "daily_schedule_hour_utc": project.daily_schedule_hour_utc,
            "executor": str(project.executor_id) if project.executor_id else "",
            "webhook_url": project.webhook_url,
        }

    def service_arguments(self) -> dict:
        """project_update's arguments, ids as chosen (the choices offer the organization's only,
        and the service checks again)."""
        data = self.cleaned_data
        return {
            F.prebuilds_enabled.name: data["prebuilds_enabled"],
            F.prebuild_environment_class_ids.name: data["prebuild_environment_classes"],
            F.prebuild_timeout.name: data["prebuild_timeout"],
            F.daily_schedule_hour_utc.name: data["daily_schedule_hour_utc"],
            F.executor_id.name: data["executor"] or None,
            F.webhook_url.name: data["webhook_url"].strip(),
        }


class ApiTokenForm(PageForm):
    FIELD_MAP = {"name": "name", "expires_in": "expires_in_days"}

    name = forms.CharField(label="Name", max_length=100, required=False)
    expires_in_days = forms.IntegerField(
        label="Expires in (days)", required=False, help_text="Empty for a token that does not expire."
    )

    def expires_in(self) -> timedelta | None:
        days = self.cleaned_data["expires_in_days"]
        return None if days is None else timedelta(days=days)
