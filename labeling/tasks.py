"""Celery tasks: thin adapters that take ids, call one service and record failure."""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings


class JobTask(Task):
    """Marks the job failed, with the error, when the task fails for good."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        from labeling.services.jobs import job_fail

        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")


@shared_task(base=JobTask, acks_late=True)
def import_task(job_id: int) -> dict | None:
    from labeling.services.ingest import import_job_run

    summary = import_job_run(job_id=job_id, workers=settings.VEIL_IMPORT_WORKERS)
    return summary.as_dict() if summary else None


@shared_task(base=JobTask, acks_late=True)
def pretrain_task(job_id: int) -> int | None:
    from labeling.services.training import pretrain_run

    version = pretrain_run(job_id=job_id, then_embed=True)
    return version.pk if version else None


@shared_task(base=JobTask, acks_late=True)
def embed_task(job_id: int) -> int:
    from labeling.services.training import embed_run

    return embed_run(job_id=job_id)


@shared_task(base=JobTask, acks_late=True)
def retrain_fit_task(job_id: int) -> int | None:
    from labeling.services.jobs import failure_recorded
    from labeling.services.rounds import retrain_fit

    with failure_recorded(job_id):
        version = retrain_fit(job_id=job_id)
    return version.pk if version else None


@shared_task(base=JobTask, acks_late=True)
def retrain_predict_task(job_id: int) -> int:
    from labeling.services.jobs import failure_recorded
    from labeling.services.rounds import retrain_predict

    with failure_recorded(job_id):
        return retrain_predict(job_id=job_id)


@shared_task(base=JobTask, acks_late=True)
def retrain_select_task(job_id: int) -> int | None:
    from labeling.services.jobs import failure_recorded
    from labeling.services.rounds import retrain_select

    with failure_recorded(job_id):
        round_ = retrain_select(job_id=job_id)
    return round_.number if round_ else None


@shared_task(base=JobTask, acks_late=True)
def export_task(job_id: int) -> str | None:
    from labeling.services.exports import export_run

    return export_run(job_id=job_id)
