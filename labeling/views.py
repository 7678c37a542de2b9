"""Server-rendered pages and the access-checked image views."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.errors import ApplicationError, Forbidden, NotFound
from labeling.models import Image, Job, Membership
from labeling.selectors.images import class_balance, image_get_for_user, import_summary
from labeling.selectors.projects import project_get_for_user, project_role, projects_for_user
from labeling.services.ingest import import_job_submit
from labeling.services.media import media_open, sketch_ensure
from labeling.services.wellbeing import reveal_record

REVEALING = ("original", "thumbnail")


@login_required
def project_list(request):
    projects = projects_for_user(user=request.user).prefetch_related("categories")
    return render(request, "labeling/project_list.html", {"projects": projects})


@login_required
def project_detail(request, slug: str):
    project = _project_or_404(request, slug)
    role = project_role(user=request.user, project=project)
    context = {
        "project": project,
        "is_admin": role == Membership.Role.ADMIN,
        "balance": class_balance(project=project),
        "summary": import_summary(project=project),
        "jobs": Job.objects.filter(project=project).order_by("-created")[:10],
        "images": Image.objects.filter(project=project, status=Image.Status.ACCEPTED)
        .select_related("source_label").order_by("-id")[:48],
    }
    return render(request, "labeling/project_detail.html", context)


@login_required
@require_POST
def project_upload(request, slug: str):
    try:
        project = project_get_for_user(user=request.user, slug=slug, admin=True)
        files = request.FILES.getlist("files")
        job = import_job_submit(
            project=project, user=request.user, uploads=files,
            source=request.POST.get("source", ""),
            labels_from_folders=bool(request.POST.get("labels_from_folders")),
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("project-detail", slug=slug)
    messages.success(request, f"Import job #{job.pk} queued with {len(files)} file(s).")
    return redirect("project-detail", slug=slug)


@login_required
@require_GET
def image_file(request, image_id: int, variant: str):
    """Serve a stored image to a member of its project.

    ``blurred`` and ``sketch`` are safe to show. ``original`` and ``thumbnail`` show the
    unblurred picture: each request for them is recorded as a reveal, and refused once
    the moderator's daily budget of sensitive reveals is spent.
    """
    try:
        image = image_get_for_user(user=request.user, image_id=image_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    name = {
        "thumbnail": image.thumbnail, "blurred": image.blurred, "sketch": image.sketch,
        "original": image.original,
    }.get(variant)
    if not name:
        raise Http404("No such image file.")
    if variant == "sketch":
        sketch_ensure(thumbnail=image.thumbnail, sketch=image.sketch)
    reveal = None
    if variant in REVEALING:
        try:
            reveal = reveal_record(user=request.user, image=image)
        except ApplicationError as exc:
            return JsonResponse({"message": exc.message, "code": exc.code, "extra": exc.extra},
                                status=exc.status_code)
    response = FileResponse(media_open(name), content_type=_content_type(name))
    response["Cache-Control"] = "private, no-store" if reveal else "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    if reveal is not None:
        response["X-Veil-Reveal"] = str(reveal.pk)
    return response


def _content_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower()
    return {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
            "bmp": "image/bmp", "tif": "image/tiff"}.get(ext, "application/octet-stream")


def _project_or_404(request, slug: str):
    try:
        return project_get_for_user(user=request.user, slug=slug)
    except (NotFound, Forbidden) as exc:
        raise Http404(exc.message) from exc
