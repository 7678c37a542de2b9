"""The loop that runs itself: what follows an import and an embedding, with no button.

After an import, accepted images are embedded with the project's pretrained default
backbone (and every other backbone its current head reads), and the text in them is
read and embedded when the project asks for it; each is a job the user sees. When the
active backbone's embeddings are there and the project has no round yet, round 0 opens
(the evaluation split plus the cold start, cluster prototypes). A project with ``auto_start`` off
is left for its admins to drive.
"""

from __future__ import annotations

import logging

from labeling.errors import ApplicationError
from labeling.models import Embedding, Image, Job, ModelVersion, Project, Round
from labeling.services.features import head_feature_set
from labeling.services.rounds import round_start_initial
from labeling.services.training import (
    backbone_default,
    embed_job_create,
    embed_job_queue,
    text_model_get_or_create,
)

logger = logging.getLogger(__name__)


def after_import(*, project: Project, inline: bool = False) -> list[Job]:
    """Queue (or, with ``inline``, run here) the embedding jobs an import calls for.

    Image backbones go first, so round 0 can open before the slower text reading ends.
    Only images missing a vector are embedded, so nothing is queued when every image
    already has one. Returns the jobs created.
    """
    from labeling.tasks import embed_task

    if not project.auto_start:
        return []
    versions = _image_versions_in_use(project, backbone_default(project=project))
    if project.ocr:
        versions.append(text_model_get_or_create(project=project))
    pending = Job.objects.filter(
        project=project, kind=Job.Kind.EMBED, status__in=[Job.Status.PENDING, Job.Status.RUNNING]
    )
    jobs = []
    for version in versions:
        if not _has_missing(project, version):
            continue
        if not inline and pending.filter(params__model_version=version.pk, status=Job.Status.PENDING).exists():
            continue  # a queued job embeds whatever is missing when it runs
        if inline:
            job = embed_job_create(project=project, model_version=version)
            embed_task.run_inline(job.pk)
        else:
            job = embed_job_queue(project=project, model_version=version)
        jobs.append(job)
    if not jobs:
        after_embed(project=project)
    return jobs


def after_embed(*, project: Project) -> Round | None:
    """Open round 0 once the active backbone has embedded the pool, if the project starts
    itself and has no round yet. Returns the round opened, if any."""
    project.refresh_from_db(fields=["auto_start"])
    if not project.auto_start or Round.objects.filter(project=project).exists():
        return None
    active = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True).first()
    if active is None or not Embedding.objects.filter(model_version=active).exists():
        return None
    try:
        round_ = round_start_initial(project=project)
    except ApplicationError as exc:
        if exc.code in ("rounds_exist", "empty_pool"):
            return None
        raise
    logger.info("project %s: round 0 opened by itself with %s items", project.slug, round_.items.count())
    return round_


def _image_versions_in_use(project: Project, default: ModelVersion) -> list[ModelVersion]:
    """The default backbone, the active one, and those the active head reads: in order, once each."""
    versions = [default]
    active = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True).first()
    head = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.HEAD, is_active=True).first()
    candidates = [active]
    if head is not None:
        try:
            candidates += list(head_feature_set(head).image_versions)
        except ApplicationError:
            pass
    for version in candidates:
        if version is not None and version.pk not in {v.pk for v in versions}:
            versions.append(version)
    return versions


def _has_missing(project: Project, version: ModelVersion) -> bool:
    return (
        Image.objects.filter(project=project, status=Image.Status.ACCEPTED)
        .exclude(embeddings__model_version=version)
        .exists()
    )
