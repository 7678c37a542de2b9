"""The admins' flag queue: images moderators flagged for policy review, and the form that
resolves them (relabel, dismiss, or change a guideline)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling import permissions
from labeling.errors import NotFound
from labeling.models import FlagResolution
from labeling.selectors.flags import flag_queue
from labeling.selectors.images import image_get_for_user
from labeling.services.flags import flag_resolve
from labeling.views.shortcuts import page_errors, project_for_page

SHOWN = 100
DONE = {
    FlagResolution.Action.RELABEL: "relabeled",
    FlagResolution.Action.DISMISS: "dismissed",
    FlagResolution.Action.GUIDELINE: "resolved with a guideline change",
}


@login_required
@require_GET
@page_errors()
def flag_queue_page(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    permissions.require(permissions.can_resolve_flags, user=request.user, project=project)
    context = {
        "project": project,
        "categories": list(project.categories.all()),
        "flagged": flag_queue(project=project, limit=SHOWN),
        "shown": SHOWN,
        "actions": FlagResolution.Action.choices,
        "recent": FlagResolution.objects.filter(image__project=project)
        .select_related("resolved_by", "category")
        .order_by("-created", "-pk")[:20],
    }
    return render(request, "labeling/flags.html", context)


@login_required
@require_POST
@page_errors(back="project-flags")
def flag_queue_resolve(request, slug: str, image_id: int):
    image = image_get_for_user(user=request.user, image_id=image_id)
    if image.project.slug != slug:
        raise NotFound(f"Image {image_id} not found.")
    resolution = flag_resolve(
        actor=request.user,
        image=image,
        action=request.POST.get("action", ""),
        note=request.POST.get("note", ""),
        category_key=request.POST.get("category") or None,
        guideline=request.POST.get("guideline"),
    )
    messages.success(request, f"Flags on image {image_id} {DONE[resolution.action]}.")
    return redirect("project-flags", slug=slug)
