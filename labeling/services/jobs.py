"""Job bookkeeping: start, progress, success, failure."""

from __future__ import annotations

import logging

from django.utils import timezone

from labeling.models import Job

logger = logging.getLogger(__name__)


def job_create(*, project, kind: str, user=None, params: dict | None = None) -> Job:
    return Job.objects.create(project=project, kind=kind, created_by=user, params=params or {})


def job_start(*, job: Job, total: int | None = None) -> None:
    job.status = Job.Status.RUNNING
    job.started = timezone.now()
    job.total = total
    job.done = 0
    job.error = ""
    job.save(update_fields=["status", "started", "total", "done", "error"])


def job_progress(*, job: Job, done: int, total: int | None = None, counts: dict | None = None) -> None:
    job.done = done
    fields = ["done"]
    if total is not None:
        job.total = total
        fields.append("total")
    if counts is not None:
        job.counts = counts
        fields.append("counts")
    Job.objects.filter(pk=job.pk).update(**{f: getattr(job, f) for f in fields})


def job_succeed(*, job: Job, result: dict | None = None) -> None:
    job.status = Job.Status.SUCCEEDED
    job.finished = timezone.now()
    if result is not None:
        job.result = result
    if job.total is not None:
        job.done = job.total
    job.save(update_fields=["status", "finished", "result", "done", "counts"])


def job_fail(*, job_id: int, error: str) -> None:
    """Mark a job failed; called by ``JobTask.on_failure`` alone, so it takes an id."""
    updated = (
        Job.objects.filter(pk=job_id)
        .exclude(status=Job.Status.SUCCEEDED)
        .update(status=Job.Status.FAILED, error=error[:5000], finished=timezone.now())
    )
    if not updated:
        logger.warning("job %s not marked failed: missing or already finished", job_id)
