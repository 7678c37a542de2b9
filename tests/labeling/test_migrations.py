"""Data migrations: rows written before a change read as the new code expects."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from labeling.models import Image, ImportIssue, Job

pytestmark = pytest.mark.django_db

import_outcomes = importlib.import_module("labeling.migrations.0005_import_outcomes")


def test_too_large_splits_into_too_many_pixels_and_file_too_large(project):
    job = Job.objects.create(
        project=project,
        kind=Job.Kind.IMPORT,
        counts={"accepted": 1, "too_large": 3},
        result={"summary": {"accepted": 1, "too_large": 3}},
    )
    bombs = [
        Image.objects.create(
            project=project,
            job=job,
            name=f"bomb{i}.png",
            sha256=f"{i:064x}",
            status=Image.Status.REJECTED,
            reason="too_large",
        )
        for i in range(2)
    ]
    heavy = ImportIssue.objects.create(job=job, name="heavy.jpg", reason="too_large")
    other = Job.objects.create(project=project, kind=Job.Kind.RETRAIN, counts={"too_large": 5})

    import_outcomes.split_too_large(apps, None)

    assert {image.reason for image in Image.objects.filter(pk__in=[b.pk for b in bombs])} == {"too_many_pixels"}
    heavy.refresh_from_db()
    assert heavy.reason == "file_too_large"
    job.refresh_from_db()
    expected = {"accepted": 1, "file_too_large": 1, "too_many_pixels": 2}
    assert job.counts == expected and job.result["summary"] == expected
    other.refresh_from_db()
    assert other.counts == {"too_large": 5}

    import_outcomes.join_too_large(apps, None)
    job.refresh_from_db()
    heavy.refresh_from_db()
    assert (job.counts, heavy.reason) == ({"accepted": 1, "too_large": 3}, "too_large")
