"""Which embeddings the head reads: candidate feature sets and their matrices.

A project's images may be embedded by several image backbones (the pretrained default,
MSN trained on the pool, a checkpoint from disk) and by the text model over the text
found in them. Each image backbone alone, each with the text fused in, and all image
backbones together are the candidates the retraining chain compares by
cross-validation (``ml.features``); the winner is recorded on the head, and prediction
and selection read the same fused matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeling.adapters import embeddings_matrix
from labeling.errors import ApplicationError
from labeling.models import Embedding, ModelVersion, Project
from ml.features import fuse, fused_name

MAX_IMAGE_BACKBONES = 3
"""Image backbones compared at most: the default, the active one and the newest others."""

MIN_COVERAGE = 0.9
"""Share of the labeled images a backbone must have embedded to be a candidate."""

MAX_LISTED_IDS = 5000
"""Image ids asked for by list at most; beyond, every vector is read and filtered here."""


@dataclass(frozen=True)
class FeatureSet:
    """Embeddings fused, in order: image backbones first, then the text model if any."""

    versions: tuple[ModelVersion, ...]

    @property
    def name(self) -> str:
        return fused_name([v.short_name for v in self.versions])

    @property
    def pks(self) -> list[int]:
        return [v.pk for v in self.versions]

    @property
    def image_versions(self) -> tuple[ModelVersion, ...]:
        return tuple(v for v in self.versions if v.kind == ModelVersion.Kind.BACKBONE)

    @property
    def text_version(self) -> ModelVersion | None:
        return next((v for v in self.versions if v.kind == ModelVersion.Kind.TEXT), None)


def feature_set_of(pks: Sequence[int]) -> FeatureSet:
    """The feature set of a head's recorded ``config["features"]``."""
    versions = {v.pk: v for v in ModelVersion.objects.filter(pk__in=list(pks))}
    missing = [pk for pk in pks if pk not in versions]
    if missing:
        raise ApplicationError(f"Embedding versions {missing} of this head no longer exist.", code="features_missing")
    return FeatureSet(tuple(versions[pk] for pk in pks))


def head_feature_set(head: ModelVersion) -> FeatureSet:
    pks = head.config.get("features") or ([head.backbone_id] if head.backbone_id else [])
    return feature_set_of(pks)


def cold_start_feature_set(project: Project) -> FeatureSet | None:
    """The active image backbone alone: what selection uses before any head exists."""
    active = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True).first()
    return FeatureSet((active,)) if active is not None else None


def candidate_feature_sets(project: Project, labeled_ids: Sequence[int]) -> list[FeatureSet]:
    """Every feature set the head may be fitted on, the default first.

    Image backbones that embedded at least ``MIN_COVERAGE`` of ``labeled_ids`` qualify
    (at most ``MAX_IMAGE_BACKBONES``: the default, the active one, then the newest);
    the text model qualifies the same way. Candidates: each image backbone alone, each
    with the text, and all image backbones together (with and without the text).
    """
    wanted = max(1, int(np.ceil(MIN_COVERAGE * len(labeled_ids))))
    labeled = np.asarray(list(labeled_ids), dtype=np.int64)

    def covers(version: ModelVersion) -> bool:
        embedded = Embedding.objects.filter(model_version=version).values_list("image_id", flat=True)
        if not len(labeled):
            return embedded.exists()
        return int(np.isin(labeled, np.fromiter(embedded.iterator(chunk_size=10_000), dtype=np.int64)).sum()) >= wanted

    backbones = list(
        ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE).order_by("-created", "-pk")
    )
    backbones.sort(key=lambda v: (v.name != "efficientnet-lite0", not v.is_active))
    images = [v for v in backbones if covers(v)][:MAX_IMAGE_BACKBONES]
    text = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.TEXT, is_active=True).first()
    texts = [text] if text is not None and covers(text) else []
    sets = [FeatureSet((v,)) for v in images]
    sets += [FeatureSet((v, t)) for v in images for t in texts]
    if len(images) > 1:
        sets.append(FeatureSet(tuple(images)))
        sets += [FeatureSet((*images, t)) for t in texts]
    return sets


def feature_matrix(feature_set: FeatureSet, image_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, X)``: images embedded by every image backbone of the set, by id, and their
    fused features (``ml.features.fuse``). An image the text model has not read yet gets
    a zero text part, as an image without text does.

    Returns ids (n,) int64 and X (n, d) float32; both empty when nothing is embedded.
    """
    wanted = None if image_ids is None else np.asarray(list(image_ids), dtype=np.int64)
    if wanted is not None and len(wanted) > MAX_LISTED_IDS:
        image_ids = None  # read every vector and keep the wanted ones: the list would not fit a statement
    ids: np.ndarray | None = None
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    for version in feature_set.image_versions:
        part_ids, X = embeddings_matrix(model_version=version, image_ids=image_ids)
        if wanted is not None and image_ids is None:
            keep = np.isin(part_ids, wanted)
            part_ids, X = part_ids[keep], X[keep]
        parts.append((part_ids, X))
        ids = part_ids if ids is None else np.intersect1d(ids, part_ids, assume_unique=True)
    if ids is None or not len(ids):
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    aligned = [X[np.searchsorted(part_ids, ids)] for part_ids, X in parts]
    text = feature_set.text_version
    if text is not None:
        text_ids, T = embeddings_matrix(model_version=text, image_ids=ids.tolist() if image_ids is not None else None)
        if image_ids is None and len(text_ids):
            keep = np.isin(text_ids, ids)
            text_ids, T = text_ids[keep], T[keep]
        rows = np.zeros((len(ids), T.shape[1] if len(text_ids) else text.config["dim"]), dtype=np.float32)
        found = np.isin(ids, text_ids)
        if found.any():
            rows[found] = T[np.searchsorted(text_ids, ids[found])]
        aligned.append(rows)
    return ids, fuse(aligned)
