"""Jobs a user may follow, and export files a user may download."""

from __future__ import annotations

from django.db.models import QuerySet

from labeling import permissions
from labeling.errors import NotFound
from labeling.models import Job, Project


def jobs_of_project(*, project: Project) -> QuerySet[Job]:
    return Job.objects.filter(project=project).select_related("project").order_by("-created")


def job_get_for_user(*, user, job_id: int) -> Job:
    """A job of a project the user is a member of."""
    job = Job.objects.select_related("project").filter(pk=job_id).first()
    if job is None or not permissions.can_view(user, job.project):
        raise NotFound(f"Job {job_id} not found.")
    return job


def export_get_for_user(*, user, job_id: int) -> Job:
    """An export job of a project whose labels the user may export.

    Anyone else, a moderator of the project included, is told it is not found: an export
    id says nothing to them.
    """
    job = Job.objects.select_related("project").filter(pk=job_id, kind=Job.Kind.EXPORT).first()
    if job is None or not permissions.can_export(user, job.project):
        raise NotFound(f"Export {job_id} not found.")
    return job
