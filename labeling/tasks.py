"""Celery tasks: thin adapters that take ids and call one service.

Every job task is a :class:`JobTask`: a transient database or broker error is retried
with back-off, a bounded number of times, and a job that fails for good is marked failed,
with the error, by :meth:`JobTask.on_failure` alone. Code that runs a job in its own
process (the management commands, an embedding that follows an import inline) goes
through :meth:`JobTask.run_inline`, so it fails and retries the same way.
"""

from __future__ import annotations

import kombu.exceptions
import redis.exceptions
from celery import Task, shared_task, states
from django import db
from django.conf import settings

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    db.OperationalError,
    db.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def close_broken_connections() -> None:
    """Close the database connections that failed and are no longer usable, so the next
    query opens a fresh one. A connection inside an atomic block (an inline run within
    the caller's transaction) belongs to that block and is left alone."""
    for connection in db.connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


class JobTask(Task):
    """A task whose first argument is a job id."""

    autoretry_for = TRANSIENT_ERRORS
    max_retries = 3
    retry_backoff = 2  # the first retry within 2 s, each later one within twice as long (full jitter)
    retry_backoff_max = 60

    def before_start(self, task_id, args, kwargs):
        close_broken_connections()

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Marks the job failed, with the error, when the task fails for good."""
        from labeling.services.jobs import job_fail

        close_broken_connections()
        job_id = kwargs.get("job_id", args[0] if args else None)
        if job_id is not None:
            job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")

    def apply(self, args=None, kwargs=None, *, throw=None, **options):
        """Run the task in this process as a worker runs it: retries and ``on_failure``
        included (Celery skips both when an eager run propagates its error), then raise
        the error if ``throw`` (default: ``task_eager_propagates``) asks for it."""
        try:
            result = super().apply(args, kwargs, throw=False, **options)
        except KeyboardInterrupt as exc:  # Celery's trace lets an interruption through
            self.on_failure(exc, None, args or (), kwargs or {}, None)
            raise
        if throw is None:
            throw = self.app.conf.task_eager_propagates
        if throw and result.state in states.PROPAGATE_STATES:
            raise result.result
        return result

    def run_inline(self, job_id: int, **options):
        """Run the job here and return the task's value; its error is raised.

        ``options`` go to the service unserialised (progress callbacks, worker counts):
        only a run in this process passes them.
        """
        return self.apply(kwargs={"job_id": job_id, **options}, throw=True).result


@shared_task(base=JobTask)
def import_task(job_id: int, **options) -> dict | None:
    from labeling.services.ingest import import_job_run

    summary = import_job_run(job_id=job_id, **{"workers": settings.VEIL_IMPORT_WORKERS, **options})
    return summary.as_dict() if summary else None


@shared_task(base=JobTask)
def pretrain_task(job_id: int, **options) -> int | None:
    from labeling.services.training import pretrain_run

    version = pretrain_run(job_id=job_id, **{"then_embed": True, **options})
    return version.pk if version else None


@shared_task(base=JobTask)
def embed_task(job_id: int, **options) -> int:
    from labeling.services.training import embed_run

    return embed_run(job_id=job_id, **options)


@shared_task(base=JobTask)
def retrain_fit_task(job_id: int) -> int | None:
    from labeling.services.rounds import retrain_fit

    version = retrain_fit(job_id=job_id)
    return version.pk if version else None


@shared_task(base=JobTask)
def retrain_predict_task(job_id: int) -> int:
    from labeling.services.rounds import retrain_predict

    return retrain_predict(job_id=job_id)


@shared_task(base=JobTask)
def retrain_select_task(job_id: int) -> int | None:
    from labeling.services.rounds import retrain_select

    round_ = retrain_select(job_id=job_id)
    return round_.number if round_ else None


@shared_task(base=JobTask)
def export_task(job_id: int) -> str | None:
    from labeling.services.exports import export_run

    return export_run(job_id=job_id)
