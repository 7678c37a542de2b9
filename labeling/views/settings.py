"""Creating a project, and its settings page: settings, taxonomy and members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling import permissions
from labeling.errors import ApplicationError, NotFound
from labeling.forms import (
    MemberAddForm,
    MemberChangeForm,
    ProjectCreateForm,
    ProjectSettingsForm,
    QualityForm,
    add_service_error,
    category_formset,
)
from labeling.selectors.projects import project_members
from labeling.services import projects as services
from labeling.views.shortcuts import page_errors, project_for_page

NEW_PROJECT_ROWS = 6


def _error_target(exc: ApplicationError, *, form, quality, categories):
    """The form a service's error belongs to, by the field it names."""
    if "index" in exc.extra or exc.extra.get("field") == "categories":
        return categories
    if exc.extra.get("field") == "quality":
        return quality
    return form


@login_required
def project_create(request):
    if not permissions.can_create_project(request.user):
        messages.error(request, "Only staff may create projects.")
        return redirect("project-list")
    data = request.POST if request.method == "POST" else None
    form = ProjectCreateForm(data)
    quality = QualityForm(data, prefix="quality")
    categories = category_formset(data=data, extra=NEW_PROJECT_ROWS)
    if data is not None and all([form.is_valid(), quality.is_valid(), categories.is_valid()]):
        try:
            project = services.project_create_by(
                actor=request.user, taxonomy=categories.ordered_specs(), quality=quality.config(), **form.cleaned_data
            )
        except ApplicationError as exc:
            add_service_error(_error_target(exc, form=form, quality=quality, categories=categories), exc)
        else:
            messages.success(request, f"Project {project.slug} created. Add its members below.")
            return redirect("project-settings", slug=project.slug)
    context = {"form": form, "quality": quality, "categories": categories}
    return render(request, "labeling/project_create.html", context, status=400 if data is not None else 200)


def _settings_page(request, project, *, status: int = 200, **forms):
    context = {
        "project": project,
        "form": forms.get("form") or ProjectSettingsForm(instance=project),
        "quality": forms.get("quality") or QualityForm(quality=project.quality, prefix="quality"),
        "categories": forms.get("categories") or category_formset(project),
        "member_form": forms.get("member_form") or MemberAddForm(),
        "members": [
            {
                **row,
                "form": MemberChangeForm(
                    initial={"role": row["membership"].role, "reveal_budget": row["membership"].reveal_budget},
                    prefix=row["user"].username,
                ),
            }
            for row in project_members(project=project)
        ],
        "new_account": forms.get("new_account"),
    }
    return render(request, "labeling/project_settings.html", context, status=status)


@login_required
@page_errors()
def project_settings(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    if request.method != "POST":
        return _settings_page(request, project)
    form = ProjectSettingsForm(request.POST, instance=project)
    quality = QualityForm(request.POST, prefix="quality")
    if form.is_valid() and quality.is_valid():
        try:
            services.project_update(actor=request.user, project=project, quality=quality.config(), **form.cleaned_data)
        except ApplicationError as exc:
            add_service_error(quality if exc.extra.get("field") == "quality" else form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect("project-settings", slug=slug)
    project.refresh_from_db()
    return _settings_page(request, project, status=400, form=form, quality=quality)


@login_required
@require_POST
@page_errors()
def project_categories(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    categories = category_formset(project, data=request.POST)
    if categories.is_valid():
        try:
            services.taxonomy_set(actor=request.user, project=project, categories=categories.ordered_specs())
        except ApplicationError as exc:
            add_service_error(categories, exc)
        else:
            messages.success(request, "Categories saved.")
            return redirect("project-settings", slug=slug)
    return _settings_page(request, project, status=400, categories=categories)


@login_required
@require_POST
@page_errors()
def project_member_add(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["create"]:
                membership, password = services.member_create(
                    actor=request.user,
                    project=project,
                    username=data["username"],
                    role=data["role"],
                    password=data["password"],
                )
                # The password is shown on this answer only, never stored in clear or redirected through.
                new_account = {"username": membership.user.username, "password": password}
                return _settings_page(request, project, new_account=new_account)
            services.member_add(actor=request.user, project=project, username=data["username"], role=data["role"])
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            messages.success(request, f"{data['username']} is now a member ({data['role']}).")
            return redirect("project-settings", slug=slug)
    return _settings_page(request, project, status=400, member_form=form)


def _member(project, username: str):
    user = get_user_model().objects.filter(username=username, memberships__project=project).first()
    if user is None:
        raise NotFound(f"{username} is not a member of {project.slug}.")
    return user


@login_required
@require_POST
@page_errors(back="project-settings")
def project_member_change(request, slug: str, username: str):
    project = project_for_page(request, slug, admin=True)
    user = _member(project, username)
    form = MemberChangeForm(request.POST, prefix=username)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        messages.error(request, f"{username}: {field.replace('_', ' ')}: {' '.join(errors)}")
        return redirect("project-settings", slug=slug)
    services.member_update(
        actor=request.user,
        project=project,
        user=user,
        role=form.cleaned_data["role"],
        reveal_budget=form.cleaned_data["reveal_budget"],
    )
    messages.success(request, f"{username} saved.")
    return redirect("project-settings", slug=slug)


@login_required
@require_POST
@page_errors(back="project-settings")
def project_member_remove(request, slug: str, username: str):
    project = project_for_page(request, slug, admin=True)
    services.member_remove(actor=request.user, project=project, user=_member(project, username))
    messages.success(request, f"{username} is no longer a member; their labels stay.")
    if username == request.user.username and not permissions.can_manage_project(request.user, project):
        return redirect("project-list")
    return redirect("project-settings", slug=slug)
