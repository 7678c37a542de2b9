"""The admins' review page: disagreements, likely label errors, annotators, adjudication,
and exports."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling.errors import NotFound
from labeling.models import Job
from labeling.selectors import reports
from labeling.selectors.flags import open_flag_counts
from labeling.selectors.images import image_get_for_user
from labeling.services.adjudication import adjudicate
from labeling.services.exports import FORMATS, export_job_submit
from labeling.views.shortcuts import page_errors, project_for_page

REPORTS = {"disagreements": reports.annotator_disagreements, "model-disagreements": reports.model_disagreements}


@login_required
@page_errors()
def review_page(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    context = {
        "project": project,
        "categories": project.categories.all(),
        "disagreements": reports.annotator_disagreements(project=project, limit=50),
        "model_disagreements": reports.model_disagreements(project=project, limit=50),
        "agreement": reports.agreement_report(project=project),
        "open_flags": open_flag_counts(project=project),
        "formats": FORMATS,
        "exports": Job.objects.filter(project=project, kind=Job.Kind.EXPORT).order_by("-created")[:10],
    }
    return render(request, "labeling/review.html", context)


@login_required
@page_errors()
def review_csv(request, slug: str, report: str):
    project = project_for_page(request, slug, admin=True)
    if report not in REPORTS:
        raise Http404("No such report.")
    response = HttpResponse(reports.rows_to_csv(REPORTS[report](project=project)), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{report}.csv"'
    return response


@login_required
@require_POST
@page_errors(back="project-review")
def review_adjudicate(request, slug: str, image_id: int):
    image = image_get_for_user(user=request.user, image_id=image_id)
    if image.project.slug != slug:
        raise NotFound(f"Image {image_id} not found.")
    adjudicate(
        actor=request.user,
        image=image,
        category_key=request.POST.get("category", ""),
        reason=request.POST.get("reason", ""),
    )
    messages.success(request, f"Image {image_id} adjudicated.")
    return redirect("project-review", slug=slug)


@login_required
@require_POST
@page_errors(back="project-review")
def review_export(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    filters = {
        "categories": request.POST.getlist("categories"),
        "sources": request.POST.getlist("sources"),
        "min_agreement": request.POST.get("min_agreement") or None,
        "split": request.POST.get("split") or None,
    }
    job = export_job_submit(actor=request.user, project=project, fmt=request.POST.get("format", ""), filters=filters)
    messages.success(request, f"Export job #{job.pk} queued.")
    return redirect("project-review", slug=slug)
