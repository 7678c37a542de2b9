"""A real Celery worker process, over the configured broker (the file broker in the
embedded mode, Redis in the scaled one), runs an import queued by the API: with the solo
pool of ``manage.py serve``, the thread pool of ``docker-compose.yml`` and Celery's
default prefork pool."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Job
from labeling.services.projects import membership_set, project_create
from moderation.celery import app as celery_app
from tests import imagefiles as f

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(params=["solo", "threads", "prefork"])
def worker(request, tmp_path, media_root, settings):
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for message in Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).glob("*.msg"):
            message.unlink()
    else:
        with celery_app.connection_for_write() as connection:
            connection.default_channel.client.flushdb()
    saved_eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "moderation.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "VEIL_MEDIA_ROOT": str(media_root),
    }
    log = open(tmp_path / "worker.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "moderation",
            "worker",
            "--pool",
            request.param,
            "--concurrency",
            "1",
            "--queues",
            "default,gpu",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process, tmp_path / "worker.log", request.param
    celery_app.conf.task_always_eager = saved_eager
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_worker_runs_an_uploaded_import(worker, make_user_committed):
    process, log, pool = worker
    project = project_create(slug="live")
    admin = make_user_committed("boss")
    membership_set(project=project, user=admin, role="admin")
    client = APIClient()
    client.force_authenticate(admin)
    response = client.post(
        reverse("api-project-upload", args=[project.slug]),
        {"files": [SimpleUploadedFile("a.jpg", f.jpeg_bytes(1)), SimpleUploadedFile("b.jpg", f.jpeg_bytes(2))]},
        format="multipart",
    )
    assert response.status_code == 202
    job_id = response.json()["id"]
    deadline = time.monotonic() + 90
    job = Job.objects.get(pk=job_id)
    while time.monotonic() < deadline and job.status in ("pending", "running"):
        assert process.poll() is None, log.read_text()
        time.sleep(0.5)
        job.refresh_from_db()
    assert job.status == "succeeded", f"{job.status} {job.error}\n{log.read_text()[-3000:]}"
    assert job.counts["accepted"] == 2
    assert project.images.filter(status="accepted").count() == 2
    # A prefork child is daemonic and may not fork analysis workers: it uses threads.
    assert ("analysis in threads" in log.read_text()) == (pool == "prefork")
