"""Jobs fail one way: a task's error marks its job failed, with the message; a transient
database error is retried on a fresh connection, a bounded number of times.

On PostgreSQL the task's connection is really killed from another connection; on SQLite
the error such a connection raises is raised in its place."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections

from labeling import tasks
from labeling.models import Job
from labeling.services import exports
from labeling.services.exports import export_job_create, export_job_submit
from labeling.tasks import TRANSIENT_ERRORS, JobTask, export_task, import_task

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid() -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def break_the_connection() -> None:
    """Kill this thread's database connection from another one (PostgreSQL), or raise
    the error of a connection that cannot go on (SQLite)."""
    if connection.vendor != "postgresql":
        raise OperationalError("database is locked")
    pid = backend_pid()
    killer = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            assert cursor.fetchone()[0], "the task's connection was terminated"
    finally:
        killer.close()


@pytest.fixture
def export_attempts(monkeypatch):
    """Each export run's start; the first ``failures`` of them on a broken connection."""
    real_start = exports.job_start
    attempts = {"pids": [], "failures": 0}

    def job_start(**kwargs):
        attempts["pids"].append(backend_pid())
        if len(attempts["pids"]) <= attempts["failures"]:
            break_the_connection()
        real_start(**kwargs)

    monkeypatch.setattr(exports, "job_start", job_start)
    return attempts


def test_a_failing_service_marks_its_job_failed_with_the_message(project, monkeypatch):
    calls = []

    def broken_rows(**kwargs):
        calls.append(kwargs)
        raise ValueError("row 7 has no category")

    monkeypatch.setattr(exports, "export_rows", broken_rows)
    with pytest.raises(ValueError, match="row 7"):  # queued on commit, run eagerly here
        export_job_submit(project=project, user=None, fmt="jsonl", filters={})
    job = Job.objects.get(kind=Job.Kind.EXPORT)
    assert job.status == Job.Status.FAILED
    assert job.error == "ValueError: row 7 has no category"
    assert job.finished is not None
    assert len(calls) == 1, "an error that is not transient is not retried"


def test_a_lost_database_connection_is_retried_on_a_fresh_one(project, export_attempts):
    export_attempts["failures"] = 1
    job = export_job_create(project=project, user=None, fmt="jsonl", filters={})

    name = export_task.run_inline(job.pk)

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.error == "" and job.result["file"] == name
    assert len(export_attempts["pids"]) == 2, "one failed attempt, one retry"
    if connection.vendor == "postgresql":
        first, second = export_attempts["pids"]
        assert first != second, "the retry ran on a new connection"


def test_retries_are_bounded_and_the_last_error_is_recorded(project, export_attempts):
    export_attempts["failures"] = 100
    job = export_job_create(project=project, user=None, fmt="jsonl", filters={})

    with pytest.raises(TRANSIENT_ERRORS):
        export_task.run_inline(job.pk)

    job.refresh_from_db()
    assert len(export_attempts["pids"]) == export_task.max_retries + 1
    assert job.status == Job.Status.FAILED
    assert job.error.startswith(("OperationalError: ", "InterfaceError: "))
    if connection.vendor == "sqlite":
        assert job.error == "OperationalError: database is locked"


def test_an_interrupted_inline_run_is_marked_failed(project, monkeypatch):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(exports, "export_rows", interrupted)
    job = export_job_create(project=project, user=None, fmt="jsonl", filters={})
    with pytest.raises(KeyboardInterrupt):
        export_task.run_inline(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error.startswith("KeyboardInterrupt")


def test_every_job_task_acks_late_and_retries_only_transient_errors():
    job_tasks = [t for t in vars(tasks).values() if isinstance(t, JobTask)]
    assert import_task in job_tasks and len(job_tasks) == 7
    for task in job_tasks:
        assert task.acks_late, task.name
        assert tuple(task.autoretry_for) == TRANSIENT_ERRORS, task.name
        assert 0 < task.max_retries <= 5, task.name
