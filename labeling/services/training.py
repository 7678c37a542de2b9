"""Backbones and embeddings: the pretrained default, MSN on the project's own images,
checkpoints from disk, and the text found in images.

The heavy work is ``ml.msn.pretrain``, ``ml.backbones.embed`` and ``ml.text``; this
module picks the images, keeps artifacts in storage, records ``ModelVersion`` rows and
progress. Every image backbone's embeddings are a candidate feature set for the head
(``labeling.services.features``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeling import permissions
from labeling.adapters import StoredImages, accepted_images, vector_to_bytes
from labeling.errors import ApplicationError
from labeling.models import Embedding, Image, Job, ModelVersion, Project
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed

logger = logging.getLogger(__name__)

CONFIGS = ("tiny", "vit-s16")
EMBED_CHUNK = 256
DEFAULT_BACKBONE_DIM = 1280
# Pretraining stores its progress at most this often, so slow steps show one by one and
# fast ones do not write a row each.
PROGRESS_SECONDS = 1.0


def pretrain_job_create(
    *,
    project: Project,
    user=None,
    config: str = "tiny",
    minutes: float | None = None,
    epochs: int | None = None,
    steps: int | None = None,
    overrides: dict | None = None,
    init_checkpoint: str | None = None,
) -> Job:
    """A pretraining job; ``init_checkpoint`` (a ViT file on the worker's disk) makes MSN
    start from its weights instead of a random initialisation."""
    if config not in CONFIGS:
        raise ApplicationError(
            f"Unknown config {config!r}; choose one of {', '.join(CONFIGS)}.", code="invalid", extra={"field": "config"}
        )
    if minutes is None and epochs is None and steps is None:
        raise ApplicationError("Give a budget: minutes, epochs or steps.", code="invalid", extra={"field": "minutes"})
    for name, value in (("minutes", minutes), ("epochs", epochs), ("steps", steps)):
        if value is not None and value <= 0:
            raise ApplicationError(f"{name} must be positive.", code="invalid", extra={"field": name})
    if init_checkpoint and not Path(init_checkpoint).is_file():
        raise ApplicationError(f"{init_checkpoint}: no such file.", code="invalid", extra={"field": "init_checkpoint"})
    if accepted_images(project.pk).count() < 2:
        raise ApplicationError("Pretraining needs at least 2 accepted images.", code="too_few_images")
    params = {
        "config": config,
        "minutes": minutes,
        "epochs": epochs,
        "steps": steps,
        "overrides": overrides or {},
        "init_checkpoint": init_checkpoint,
    }
    return job_create(project=project, kind=Job.Kind.PRETRAIN, user=user, params=params)


def pretrain_job_submit(*, actor, project: Project, **kwargs) -> Job:
    """An admin of the project starts pretraining; ``kwargs`` as for :func:`pretrain_job_create`."""
    from labeling.tasks import pretrain_task

    permissions.require(permissions.can_run_jobs, user=actor, project=project)
    with transaction.atomic():
        job = pretrain_job_create(project=project, user=actor, **kwargs)
        transaction.on_commit(lambda: pretrain_task.delay(job_id=job.pk))
    return job


def pretrain_run(
    *,
    job_id: int,
    progress: Callable[[int, int | None, float], None] | None = None,
    num_workers: int | None = None,
    then_embed: bool = False,
) -> ModelVersion | None:
    """Pretrain MSN on the project's accepted images; the result becomes the active backbone.

    Checkpoints go to a work folder named after the job, so a retried job resumes. The
    new backbone has to embed the pool before the retraining chain can compare it with
    the other candidates: ``then_embed`` queues that job.
    """
    from ml.msn import MSNConfig, pretrain

    job = Job.objects.select_related("project").filter(pk=job_id, kind=Job.Kind.PRETRAIN).first()
    if job is None or job.status == Job.Status.SUCCEEDED:
        return None
    params = job.params
    config = MSNConfig.preset(params["config"], **params.get("overrides", {}))
    images = list(accepted_images(job.project_id).values_list("original", flat=True))
    job_start(job=job, total=params.get("steps"))
    work = Path(settings.VAR_DIR) / "work" / f"pretrain-{job.pk}"

    reported = {"at": 0.0, "total": params.get("steps")}

    def report(step: int, total: int | None, loss: float) -> None:
        # Every step that comes PROGRESS_SECONDS after the last one stored, the first,
        # the last, and the one that first knows the total of a run bounded by minutes.
        now = time.monotonic()
        if step == 1 or step == total or total != reported["total"] or now - reported["at"] >= PROGRESS_SECONDS:
            job_progress(job=job, done=step, total=total, counts={"loss": round(loss, 5)})
            reported.update(at=now, total=total)
        if progress:
            progress(step, total, loss)

    result = pretrain(
        StoredImages(images),
        config=config,
        out_dir=work,
        max_steps=params.get("steps"),
        max_minutes=params.get("minutes"),
        epochs=params.get("epochs"),
        checkpoint_every=50,
        resume=True,
        progress=report,
        num_workers=num_workers,
        init_backbone=params.get("init_checkpoint") or None,
    )
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=job.project,
            kind=ModelVersion.Kind.BACKBONE,
            name="vit",
            config={
                **config.to_dict(),
                "preset": params["config"],
                "images": len(images),
                "init_checkpoint": params.get("init_checkpoint"),
            },
            loss_curve=[[step, round(loss, 6)] for step, loss in result.loss_curve],
            metrics={
                "steps": result.steps,
                "total_steps": result.total_steps,
                "seconds": round(result.seconds, 2),
                "device": result.device,
                "resumed_from": result.resumed_from,
            },
        )
        version.artifact = _store_artifact(result.backbone_path, f"models/{job.project.slug}/{version.pk}/backbone.pt")
        version.save(update_fields=["artifact"])
        model_version_activate(version=version)
        job.total = result.total_steps
        job.done = result.steps
        job_succeed(
            job=job,
            result={
                "model_version": version.pk,
                "steps": result.steps,
                "final_loss": result.loss_curve[-1][1] if result.loss_curve else None,
            },
        )
    shutil.rmtree(work, ignore_errors=True)
    if then_embed:
        embed_job_queue(project=job.project, user=job.created_by, model_version=version)
    return version


def backbone_register(*, project: Project, path: str | Path, num_heads: int | None = None) -> ModelVersion:
    """Make a backbone file on disk (Veil's own, a torchvision ViT state dict, or an
    official MSN checkpoint) the project's active backbone."""
    from ml.embed import load_backbone_file

    path = Path(path)
    if not path.is_file():
        raise ApplicationError(f"{path}: no such file.", code="invalid", extra={"field": "checkpoint"})
    try:
        vit = load_backbone_file(path, num_heads=num_heads)
    except ValueError as exc:
        raise ApplicationError(str(exc), code="invalid_checkpoint", extra={"field": "checkpoint"}) from exc
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project,
            kind=ModelVersion.Kind.BACKBONE,
            name="vit",
            config={
                "source": str(path),
                "num_heads": num_heads,
                "image_size": vit.image_size,
                "patch_size": vit.patch_size,
                "hidden_dim": vit.hidden_dim,
                "pooling": "cls",
            },
        )
        version.artifact = _store_artifact(path, f"models/{project.slug}/{version.pk}/{path.name}")
        version.save(update_fields=["artifact"])
        model_version_activate(version=version)
    return version


def model_version_activate(*, version: ModelVersion) -> None:
    with transaction.atomic():
        ModelVersion.objects.filter(project=version.project, kind=version.kind, is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        version.is_active = True
        version.save(update_fields=["is_active"])


def embed_job_create(*, project: Project, user=None, model_version: ModelVersion | None = None) -> Job:
    """An embedding job for ``model_version`` (default: the active image backbone), an image
    backbone or the text model."""
    version = model_version or _active_backbone(project)
    return job_create(
        project=project,
        kind=Job.Kind.EMBED,
        user=user,
        params={"model_version": version.pk, "model": version.name or version.kind},
    )


def embed_job_submit(*, actor, project: Project, model_version: ModelVersion | None = None) -> Job:
    """An admin of the project asks for an embedding job."""
    permissions.require(permissions.can_run_jobs, user=actor, project=project)
    return embed_job_queue(project=project, user=actor, model_version=model_version)


def embed_job_queue(*, project: Project, user=None, model_version: ModelVersion | None = None) -> Job:
    """Create an embedding job and queue it once the transaction has committed: what
    follows an import or a pretraining job by itself, and :func:`embed_job_submit`."""
    from labeling.tasks import embed_task

    with transaction.atomic():
        job = embed_job_create(project=project, user=user, model_version=model_version)
        transaction.on_commit(lambda: embed_task.delay(job_id=job.pk))
    return job


def embed_run(*, job_id: int, batch_size: int = 32, progress: Callable[[int, int], None] | None = None) -> int:
    """Embed every accepted image of the project that has no vector for the job's version.

    An image backbone embeds the pixels; the text model reads the text in each image
    first (OCR, kept on the image) and embeds it. Idempotent: vectors are written a chunk
    at a time, so a rerun computes only what is missing. When the run succeeds, the
    project's loop may move on (:func:`labeling.services.pipeline.after_embed`). Returns
    the number of vectors written.
    """
    job = Job.objects.select_related("project").filter(pk=job_id, kind=Job.Kind.EMBED).first()
    if job is None or job.status == Job.Status.SUCCEEDED:
        return 0
    version = ModelVersion.objects.filter(pk=job.params["model_version"]).first()
    if version is None:
        raise ApplicationError("The model version to embed with no longer exists.", code="not_found")
    missing = list(
        accepted_images(job.project_id)
        .exclude(embeddings__model_version=version)
        .values_list("pk", "original", "ocr_text")
    )
    job_start(job=job, total=len(missing))
    written = 0
    if missing:
        embed_chunk = (
            _text_embedder(version) if version.kind == ModelVersion.Kind.TEXT else _image_embedder(version, batch_size)
        )
        for start in range(0, len(missing), EMBED_CHUNK):
            chunk = missing[start : start + EMBED_CHUNK]
            vectors = embed_chunk(chunk)
            Embedding.objects.bulk_create(
                [
                    Embedding(image_id=pk, model_version=version, vector=vector_to_bytes(v))
                    for (pk, _, _), v in zip(chunk, vectors, strict=True)
                ],
                ignore_conflicts=True,
            )
            written += len(chunk)
            job_progress(job=job, done=written, total=len(missing))
            if progress:
                progress(written, len(missing))
    job_succeed(
        job=job, result={"model_version": version.pk, "embedded": written, "finished": timezone.now().isoformat()}
    )
    # Imported here because labeling.services.pipeline imports this module.
    from labeling.services.pipeline import after_embed

    after_embed(project=job.project)
    return written


EmbedChunk = Callable[[list[tuple[int, str, str]]], np.ndarray]


def _image_embedder(version: ModelVersion, batch_size: int) -> EmbedChunk:
    from ml.backbones import embed

    backbone = image_backbone_load(version)

    def embed_chunk(chunk):
        return embed(backbone, StoredImages([name for _, name, _ in chunk]), batch_size=batch_size)

    return embed_chunk


def _text_embedder(version: ModelVersion) -> EmbedChunk:
    """Reads the text in the chunk's images, keeps it on the images, and embeds it (no
    text: a zero vector)."""
    from ml.text import read_text, text_embedder

    embedder = text_embedder()

    def embed_chunk(chunk):
        texts = read_text(StoredImages([name for _, name, _ in chunk]))
        Image.objects.bulk_update(
            [Image(pk=pk, ocr_text=text) for (pk, _, _), text in zip(chunk, texts, strict=True)],
            ["ocr_text"],
            batch_size=500,
        )
        return embedder.embed(texts)

    return embed_chunk


def image_backbone_load(version: ModelVersion):
    """The ``ml.backbones.ImageBackbone`` of an image backbone version."""
    from ml.backbones import DEFAULT_BACKBONE, load_image_backbone

    if version.name == DEFAULT_BACKBONE:
        return load_image_backbone(DEFAULT_BACKBONE)
    with _local_copy(version.artifact) as local:
        return load_image_backbone(
            "vit", path=local, num_heads=version.config.get("num_heads"), pooling=version.config.get("pooling", "cls")
        )


def backbone_default(*, project: Project) -> ModelVersion:
    """The project's pretrained default image backbone, created on first use; it becomes
    the active backbone when the project has none. Its weights ship inside a package."""
    from ml.backbones import BACKBONES, DEFAULT_BACKBONE

    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        versions = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE)
        version = versions.filter(name=DEFAULT_BACKBONE).order_by("pk").first()
        if version is None:
            version = ModelVersion.objects.create(
                project=project,
                kind=ModelVersion.Kind.BACKBONE,
                name=DEFAULT_BACKBONE,
                is_active=not versions.filter(is_active=True).exists(),
                config={
                    "backbone": DEFAULT_BACKBONE,
                    "dim": DEFAULT_BACKBONE_DIM,
                    "source": BACKBONES[DEFAULT_BACKBONE],
                },
            )
    return version


def text_model_get_or_create(*, project: Project) -> ModelVersion:
    """The project's text model (OCR, then a sentence embedding of the text found)."""
    from ml.text import TEXT_BACKBONE, TEXT_DIM

    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        version = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.TEXT, is_active=True).first()
        if version is None:
            version = ModelVersion.objects.create(
                project=project,
                kind=ModelVersion.Kind.TEXT,
                name=TEXT_BACKBONE,
                is_active=True,
                config={"backbone": TEXT_BACKBONE, "dim": TEXT_DIM, "ocr": "rapidocr"},
            )
    return version


def _active_backbone(project: Project) -> ModelVersion:
    version = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True).first()
    if version is None:
        raise ApplicationError(
            f"Project {project.slug!r} has no backbone yet: pretrain one or register a checkpoint.",
            code="no_backbone",
        )
    return version


def _store_artifact(local: Path, name: str) -> str:
    with open(local, "rb") as handle:
        return default_storage.save(name, File(handle))


class _local_copy:
    """A local file path for a stored artifact (the storage's own path when it has one)."""

    def __init__(self, name: str):
        self.name = name
        self._tmp: str | None = None

    def __enter__(self) -> str:
        try:
            return default_storage.path(self.name)
        except NotImplementedError:
            handle, self._tmp = tempfile.mkstemp(suffix=Path(self.name).suffix)
            with open(handle, "wb") as out, default_storage.open(self.name, "rb") as src:
                shutil.copyfileobj(src, out)
            return self._tmp

    def __exit__(self, *exc) -> None:
        if self._tmp:
            Path(self._tmp).unlink(missing_ok=True)
