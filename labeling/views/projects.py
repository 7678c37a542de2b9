"""The project list, a project's page and its upload form."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from labeling import permissions
from labeling.models import Image, Job
from labeling.selectors.images import class_balance, import_summary
from labeling.selectors.projects import project_role, projects_overview
from labeling.services.ingest import import_job_submit
from labeling.views.shortcuts import page_errors, project_for_page


@login_required
def project_list(request):
    context = {
        "overviews": projects_overview(user=request.user),
        "can_create": permissions.can_create_project(request.user),
    }
    return render(request, "labeling/project_list.html", context)


@login_required
@page_errors()
def project_detail(request, slug: str):
    project = project_for_page(request, slug)
    role = project_role(user=request.user, project=project)
    context = {
        "project": project,
        "is_admin": permissions.can_administer.allows(role),
        "balance": class_balance(project=project),
        "summary": import_summary(project=project),
        "jobs": Job.objects.filter(project=project).order_by("-created")[:10],
        "images": Image.objects.filter(project=project, status=Image.Status.ACCEPTED)
        .select_related("source_label")
        .order_by("-id")[:48],
    }
    return render(request, "labeling/project_detail.html", context)


@login_required
@require_POST
@page_errors(back="project-detail")
def project_upload(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    files = request.FILES.getlist("files")
    job = import_job_submit(
        actor=request.user,
        project=project,
        uploads=files,
        source=request.POST.get("source", ""),
        labels_from_folders=bool(request.POST.get("labels_from_folders")),
    )
    refused = list(job.import_issues.all())
    messages.success(request, f"Import job #{job.pk} queued with {len(files) - len(refused)} file(s).")
    for issue in refused:
        messages.error(request, f"Not imported: {issue.detail}")
    return redirect("project-detail", slug=slug)
