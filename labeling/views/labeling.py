"""The moderators' labeling page.

The page is rendered once; ``static/js/label.js`` then drives the queue through the
REST API (next, submit, undo, reveal finish) and the access-checked image view. This
module renders the page and saves the moderator's display defaults.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling.errors import ApplicationError
from labeling.services.preferences import preferences_get, preferences_set
from labeling.services.queue import lease_status
from labeling.views.shortcuts import page_errors, project_for_page, wants_json

TRUE_VALUES = {"on", "true", "1", "yes"}


@login_required
@require_GET
@page_errors()
def label_page(request, slug: str):
    project = project_for_page(request, slug)
    preferences = preferences_get(user=request.user, project=project)
    config = {
        "project": project.slug,
        "blur_strength": preferences.blur_strength,
        "greyscale": preferences.greyscale,
        "break_after_minutes": project.break_after_minutes,
        "break_after_sensitive_reveals": project.break_after_sensitive_reveals,
        "urls": {
            "next": reverse("api-queue-next", args=[project.slug]),
            "undo": reverse("api-queue-undo", args=[project.slug]),
            "status": reverse("api-queue-status", args=[project.slug]),
            "submit": reverse("api-queue-submit", args=[0]).replace("/0/", "/{id}/"),
            "reveal_finish": reverse("api-reveal-finish", args=[0]).replace("/0/", "/{id}/"),
            "preferences": reverse("label-preferences", args=[project.slug]),
        },
    }
    context = {
        "project": project,
        "categories": list(project.categories.all()),
        "preferences": preferences,
        **lease_status(user=request.user, project=project),
        "config": config,
    }
    return render(request, "labeling/label.html", context)


@login_required
@require_POST
@page_errors(back="label")
def label_preferences(request, slug: str):
    """Save blur strength and greyscale as the moderator's defaults for the project.

    Answers JSON to ``Accept: application/json`` (the page's script) and otherwise
    redirects back to the page with a message (the form without script).
    """
    project = project_for_page(request, slug)
    saved = preferences_set(
        user=request.user,
        project=project,
        blur_strength=_whole_number(request.POST.get("blur_strength", ""), field="blur_strength"),
        greyscale=request.POST.get("greyscale", "").lower() in TRUE_VALUES,
    )
    if wants_json(request):
        return JsonResponse({"blur_strength": saved.blur_strength, "greyscale": saved.greyscale})
    messages.success(request, "Display defaults saved.")
    return redirect("label", slug=project.slug)


def _whole_number(value: str, *, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApplicationError(f"{field} must be a whole number, not {value!r}.", extra={"field": field}) from None
