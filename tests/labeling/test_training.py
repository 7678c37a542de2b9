"""Pretraining and embedding through the commands and services, on generated images."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from torchvision.models.vision_transformer import VisionTransformer

from labeling.adapters import embeddings_matrix
from labeling.errors import ApplicationError
from labeling.models import Embedding, Job, ModelVersion
from labeling.services.ingest import import_job_create, import_job_run
from labeling.services.training import pretrain_job_create
from tests import imagefiles as f

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture
def pool(project, tmp_path):
    for seed in range(10):
        (tmp_path / f"{seed}.jpg").write_bytes(f.jpeg_bytes(seed))
    import_job_run(job_id=import_job_create(project=project, paths=[str(tmp_path)]).pk, then="none")
    return project


def run(command, *args, **kwargs) -> dict:
    out = io.StringIO()
    call_command(command, *args, json=True, stdout=out, **kwargs)
    return json.loads(out.getvalue())


def test_pretrain_then_embed(pool, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    summary = run("pretrain", project=pool.slug, config="tiny", steps=3, workers=0)
    version = ModelVersion.objects.get(pk=summary["model_version"])
    assert version.kind == "backbone" and version.is_active
    assert [step for step, _ in version.loss_curve] == [1, 2, 3]
    assert version.config["preset"] == "tiny" and version.config["images"] == 10
    assert Job.objects.get(kind="pretrain").status == "succeeded"
    assert not (tmp_path / "var" / "work").exists() or not any((tmp_path / "var" / "work").iterdir())
    assert summary["embedded"] == 10, "the new backbone embeds the pool right after pretraining"

    ids, X = embeddings_matrix(model_version=version)
    assert X.shape == (10, 192) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert run("embed", project=pool.slug)["embedded"] == 0, "only missing vectors are computed"

    Embedding.objects.filter(image_id=ids[0]).delete()
    assert run("embed", project=pool.slug)["embedded"] == 1


def test_embed_with_a_checkpoint_file_from_disk(pool, tmp_path):
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32)
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    summary = run("embed", project=pool.slug, checkpoint=str(path), num_heads=2)
    assert summary["embedded"] == 10
    version = ModelVersion.objects.get(pk=summary["model_version"])
    assert version.is_active and version.config["image_size"] == 32 and version.config["source"] == str(path)
    assert embeddings_matrix(model_version=version)[1].shape == (10, 16)


def test_bad_checkpoint_and_budgets_are_refused_by_name(pool, tmp_path):
    junk = tmp_path / "weights.pth"
    junk.write_text("not weights")
    with pytest.raises(CommandError, match="weights.pth"):
        call_command("embed", project=pool.slug, checkpoint=str(junk))
    assert not ModelVersion.objects.exists()
    with pytest.raises(CommandError, match="no backbone"):
        call_command("embed", project=pool.slug)
    with pytest.raises(ApplicationError, match="config"):
        pretrain_job_create(project=pool, config="huge", steps=1)
    with pytest.raises(ApplicationError, match="steps must be positive"):
        pretrain_job_create(project=pool, config="tiny", steps=0)


def test_pretraining_stores_its_progress_step_by_step(pool, settings, tmp_path):
    """Slow steps (here slowed by the callback) are stored one by one, not every tenth."""
    import time

    from labeling.services.training import pretrain_run

    settings.VAR_DIR = tmp_path / "var"
    job = pretrain_job_create(project=pool, config="tiny", steps=6)
    stored = []

    def slow_step(step, total, loss):
        stored.append((step, Job.objects.values_list("done", "total").get(pk=job.pk)))
        time.sleep(0.6)

    pretrain_run(job_id=job.pk, progress=slow_step, num_workers=0)
    assert stored[0] == (1, (1, 6))
    for step, (done, total) in stored:
        assert total == 6 and step - 1 <= done <= step, stored
    assert Job.objects.get(pk=job.pk).status == "succeeded"
