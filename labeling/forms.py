"""The pages' forms for projects, their taxonomies and their members.

Forms parse and check the shape of what is posted; the rules (unique keys and hotkeys,
keys kept once labels exist, the last admin) live in ``labeling.services.projects``,
whose errors :func:`add_service_error` puts next to the field they name.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

from django import forms

from labeling.errors import ApplicationError
from labeling.models import Category, Membership, Project
from labeling.services.projects import PROJECT_SETTINGS, category_in_use
from ml.quality import QualityConfig

DEFAULT_QUALITY = QualityConfig()


class ProjectSettingsForm(forms.ModelForm):
    """Every setting of a project an admin may change."""

    class Meta:
        model = Project
        fields = list(PROJECT_SETTINGS)
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        labels = {
            "overlap": "Labels per item (overlap)",
            "batch_size": "Batch size (items per round)",
            "strategy": "Selection strategy",
            "blur_radius": "Blur radius",
            "break_after_minutes": "Suggest a break after (minutes)",
            "break_after_sensitive_reveals": "Suggest a break after (sensitive reveals)",
            "daily_sensitive_reveals": "Daily sensitive-reveal budget per moderator",
        }


class ProjectCreateForm(ProjectSettingsForm):
    """The settings of a new project, and its slug."""

    class Meta(ProjectSettingsForm.Meta):
        fields = ["slug", *PROJECT_SETTINGS]
        help_texts = {"slug": "Lower-case letters, digits, - or _; it names the project in URLs and cannot change."}


class QualityForm(forms.Form):
    """The import quality thresholds of ``ml.quality.QualityConfig``, as fields."""

    min_bytes = forms.IntegerField(min_value=0, initial=DEFAULT_QUALITY.min_bytes, label="Smallest file (bytes)")
    min_width = forms.IntegerField(min_value=0, initial=DEFAULT_QUALITY.min_width, label="Narrowest image (pixels)")
    min_height = forms.IntegerField(min_value=0, initial=DEFAULT_QUALITY.min_height, label="Lowest image (pixels)")
    max_pixels = forms.IntegerField(
        min_value=1, initial=DEFAULT_QUALITY.max_pixels, label="Most pixels (width × height)"
    )
    blank_std = forms.FloatField(
        min_value=0, initial=DEFAULT_QUALITY.blank_std, label="Blank below (grey-level standard deviation)"
    )
    formats = forms.CharField(
        initial=", ".join(DEFAULT_QUALITY.formats), label="Formats", help_text="Pillow format names, comma-separated."
    )

    def __init__(self, *args, quality: dict | None = None, **kwargs):
        if quality is not None:
            kwargs.setdefault("initial", {**quality, "formats": ", ".join(quality.get("formats", ()))})
        super().__init__(*args, **kwargs)

    def clean_formats(self) -> list[str]:
        names = [name.strip() for name in self.cleaned_data["formats"].split(",") if name.strip()]
        if not names:
            raise forms.ValidationError("Name at least one format.")
        return names

    def config(self) -> dict:
        known = {f.name for f in dataclass_fields(QualityConfig)}
        return {name: value for name, value in self.cleaned_data.items() if name in known}


class CategoryForm(forms.Form):
    """One row of the taxonomy editor; ``id`` is set for a category that exists."""

    id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    key = forms.RegexField(
        regex=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        error_messages={"invalid": "Use lower-case letters, digits, _ or -."},
    )
    name = forms.CharField(max_length=200, required=False)
    hotkey = forms.CharField(max_length=1, required=False, strip=False, widget=forms.TextInput(attrs={"size": 2}))
    guideline = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 40}))
    sensitive = forms.BooleanField(required=False)

    def spec(self) -> dict:
        data = {name: self.cleaned_data.get(name) for name in ("key", "name", "hotkey", "guideline", "sensitive")}
        if self.cleaned_data.get("id") is not None:
            data["id"] = self.cleaned_data["id"]
        return data


class BaseCategoryFormSet(forms.BaseFormSet):
    def ordered_specs(self) -> list[dict]:
        """The rows kept (not deleted, not left empty), in the order asked for."""
        return [form.spec() for form in self.ordered_forms]


def category_formset(project: Project | None = None, data=None, extra: int = 3) -> BaseCategoryFormSet:
    """The taxonomy editor, filled with the project's categories when there is one."""
    initial = []
    if project is not None:
        initial = [
            {
                "id": c.pk,
                "key": c.key,
                "name": c.name,
                "hotkey": c.hotkey,
                "guideline": c.guideline,
                "sensitive": c.sensitive,
                "ORDER": c.order + 1,
                "in_use": category_in_use(c),
            }
            for c in Category.objects.filter(project=project)
        ]
    formset_class = forms.formset_factory(
        CategoryForm, formset=BaseCategoryFormSet, extra=extra, can_order=True, can_delete=project is not None
    )
    return formset_class(data=data, initial=initial, prefix="categories")


class MemberAddForm(forms.Form):
    """Invite an existing user, or create an account, as a member of the project."""

    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MODERATOR)
    create = forms.BooleanField(required=False, label="Create a new account")
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="For a new account; leave empty to generate one. It is shown once.",
    )


class MemberChangeForm(forms.Form):
    """A member's role and daily reveal budget (empty: the project's default)."""

    role = forms.ChoiceField(choices=Membership.Role.choices)
    reveal_budget = forms.IntegerField(min_value=0, required=False, label="Daily sensitive reveals")


def add_service_error(form: forms.Form | forms.BaseFormSet, exc: ApplicationError) -> None:
    """Show a service's error next to the field it names (and, in a formset, the row)."""
    if isinstance(form, forms.BaseFormSet):
        index = exc.extra.get("index")
        ordered = form.ordered_forms if form.is_bound else []
        if index is not None and index < len(ordered):
            target, field = ordered[index], exc.extra.get("field")
            target.add_error(field if field in target.fields else None, exc.message)
        form._non_form_errors = form.error_class([*form.non_form_errors(), exc.message])
        return
    field = exc.extra.get("field")
    form.add_error(field if field in form.fields else None, exc.message)
