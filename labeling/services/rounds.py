"""Rounds: what moderators label, and the retraining that picks the next batch.

Round 0 holds the evaluation split (a fixed random sample of the pool, never chosen by
a strategy) and a cold-start selection. When a round's items all have their labels, or
an admin asks, a Celery chain runs ``retrain_fit`` (training labels, the feature set
that cross-validates best, fit the head, evaluate on the evaluation split), ``retrain_predict`` (predict the pool, auto-accept)
and ``retrain_select`` (select the next batch with the project's strategy and fill the
queue). A failed step leaves the previous head active; the job carries the error.
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeling import permissions
from labeling.errors import ApplicationError
from labeling.models import (
    Image,
    Job,
    ModelVersion,
    Prediction,
    Project,
    QueueItem,
    Round,
    SelectionStrategy,
)
from labeling.selectors.labels import LabelSource, human_labeled_images, training_labels
from labeling.services.features import (
    candidate_feature_sets,
    cold_start_feature_set,
    feature_matrix,
    head_feature_set,
)
from labeling.services.jobs import job_create, job_progress, job_start, job_succeed
from labeling.services.training import model_version_activate
from ml.features import best_feature_set, compare_feature_sets
from ml.head import LinearHead
from ml.loop import COLD_START, NEEDS_PROBA, choose_batch
from ml.metrics import evaluate

logger = logging.getLogger(__name__)


def _pool(project: Project):
    return Image.objects.filter(project=project, status=Image.Status.ACCEPTED)


def _active(project: Project, kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, kind=kind, is_active=True).first()


def round_start(*, actor, project: Project) -> Round:
    """An admin of the project opens round 0 (see :func:`round_start_initial`)."""
    permissions.require(permissions.can_run_jobs, user=actor, project=project)
    return round_start_initial(project=project)


@transaction.atomic
def round_start_initial(*, project: Project, seed: int = 0) -> Round:
    """Round 0: the evaluation split plus a cold-start selection of the pool.

    The cold start (``ml.loop.COLD_START``: k-means cluster prototypes) runs over the
    active backbone's embeddings (the pretrained default unless another was made
    active); it is a seeded random sample when the project has no embeddings yet.
    """
    Project.objects.select_for_update().get(pk=project.pk)
    if Round.objects.filter(project=project).exists():
        raise ApplicationError(f"Project {project.slug!r} already has rounds.", code="rounds_exist")
    ids = np.asarray(_pool(project).order_by("pk").values_list("pk", flat=True), dtype=np.int64)
    if not len(ids):
        raise ApplicationError("The project has no accepted images yet.", code="empty_pool")
    rng = np.random.default_rng(seed)
    n_eval = min(project.eval_cap, math.ceil(project.eval_fraction * len(ids))) if project.eval_fraction else 0
    eval_ids = np.sort(rng.choice(ids, size=min(n_eval, len(ids) - 1), replace=False)) if n_eval else ids[:0]
    Image.objects.filter(pk__in=eval_ids.tolist()).update(split=Image.Split.EVAL)

    rest = np.setdiff1d(ids, eval_ids)
    chosen, strategy = _select(project, rest, budget=project.batch_size, strategy=COLD_START, seed=seed)
    round_ = Round.objects.create(project=project, number=0, strategy=strategy)
    _fill(round_, chosen, eval_ids=eval_ids, seed=seed)
    return round_


def round_complete(*, round_id: int) -> None:
    """Close a round whose items all have their labels, and retrain after the commit."""
    updated = Round.objects.filter(pk=round_id, status=Round.Status.OPEN).update(
        status=Round.Status.CLOSED, closed=timezone.now()
    )
    if updated:
        round_ = Round.objects.select_related("project").get(pk=round_id)
        retrain_job_queue(project=round_.project, reason=f"round {round_.number} complete")


def retrain_job_submit(*, actor, project: Project, reason: str = "requested") -> Job:
    """An admin of the project asks for retraining (see :func:`retrain_job_queue`)."""
    permissions.require(permissions.can_run_jobs, user=actor, project=project)
    return retrain_job_queue(project=project, user=actor, reason=reason)


def retrain_job_queue(*, project: Project, user=None, reason: str = "requested") -> Job:
    """Queue the retraining chain, unless one is already pending or running: what follows
    a completed round by itself, and :func:`retrain_job_submit`."""
    from celery import chain

    from labeling.tasks import retrain_fit_task, retrain_predict_task, retrain_select_task

    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        running = Job.objects.filter(
            project=project, kind=Job.Kind.RETRAIN, status__in=[Job.Status.PENDING, Job.Status.RUNNING]
        ).first()
        if running is not None:
            return running
        job = job_create(project=project, kind=Job.Kind.RETRAIN, user=user, params={"reason": reason})
        transaction.on_commit(
            lambda: chain(
                retrain_fit_task.si(job_id=job.pk),
                retrain_predict_task.si(job_id=job.pk),
                retrain_select_task.si(job_id=job.pk),
            ).delay()
        )
    return job


def retrain_fit(*, job_id: int) -> ModelVersion | None:
    """Fit the head on the training labels, on the feature set that cross-validates best,
    and evaluate it on the evaluation split.

    Candidates are every embedded backbone alone, with the text in the images, and
    together (``labeling.services.features``); with labels of at least two classes, two
    each, they are compared on the same folds (``ml.features``) and the comparison is
    recorded on the head. Otherwise the active backbone alone is used.
    """

    job = Job.objects.select_related("project").get(pk=job_id)
    project = job.project
    job_start(job=job, total=3)
    labels = training_labels(project=project, weak=project.weak_labels)
    splits = dict(_pool(project).filter(pk__in=list(labels)).values_list("pk", "split"))
    candidates = candidate_feature_sets(project, [pk for pk in labels if splits.get(pk) == Image.Split.POOL])
    if not candidates:
        fallback = cold_start_feature_set(project)
        candidates = [fallback] if fallback is not None else []
    if not candidates:
        raise ApplicationError("No embeddings yet: embed the pool with a backbone first.", code="no_embeddings")
    matrices = {fs.name: feature_matrix(fs, list(labels)) for fs in candidates}
    common = None
    for ids, _ in matrices.values():
        common = ids if common is None else np.intersect1d(common, ids, assume_unique=True)
    if labels and not len(common):
        raise ApplicationError(
            "No embeddings of the labeled images yet: embed the pool with a backbone first.", code="no_embeddings"
        )
    train_ids = [pk for pk in common.tolist() if splits.get(pk) == Image.Split.POOL]
    held_ids = [
        pk for pk in common.tolist() if splits.get(pk) == Image.Split.EVAL and labels[pk].source != LabelSource.IMPORT
    ]
    y = np.asarray([labels[pk].category.key for pk in train_ids])
    if len(set(y.tolist())) < 2:
        raise ApplicationError("The head needs labels of at least two categories in the pool.", code="too_few_labels")

    def rows(name: str, wanted: list[int]) -> np.ndarray:
        ids, X = matrices[name]
        return X[np.searchsorted(ids, wanted)]

    comparison: dict = {}
    chosen = candidates[0].name
    _, counts = np.unique(y, return_counts=True)
    if len(candidates) > 1 and counts.min() >= 2:
        scores = compare_feature_sets({fs.name: rows(fs.name, train_ids) for fs in candidates}, y)
        chosen = best_feature_set(scores)
        comparison = {"chosen": chosen, "criterion": "class-balanced out-of-fold log-loss", "scores": scores}
    feature_set = next(fs for fs in candidates if fs.name == chosen)
    head = LinearHead(random_state=0).fit(rows(chosen, train_ids), y)
    metrics: dict = {
        "n_train": len(train_ids),
        "n_eval": len(held_ids),
        "feature_set": chosen,
        "n_weak": sum(labels[pk].source == LabelSource.IMPORT for pk in train_ids),
    }
    if comparison:
        metrics["feature_selection"] = comparison
    if held_ids:
        proba = head.predict_proba(rows(chosen, held_ids))
        metrics.update(
            evaluate([labels[pk].category.key for pk in held_ids], proba, list(head.classes_), neutral="neutral")
        )
    buffer = io.BytesIO()
    head.save(buffer)
    with transaction.atomic():
        version = ModelVersion.objects.create(
            project=project,
            kind=ModelVersion.Kind.HEAD,
            backbone=feature_set.image_versions[0],
            config={
                "C": float(head.C_),
                "classes": [str(c) for c in head.classes_],
                "calibration": head.calibration_,
                "features": feature_set.pks,
            },
            metrics=metrics,
        )
        version.artifact = default_storage.save(
            f"models/{project.slug}/{version.pk}/head.joblib", ContentFile(buffer.getvalue())
        )
        version.save(update_fields=["artifact"])
        model_version_activate(version=version)
        latest = Round.objects.filter(project=project).order_by("-number").first()
        if latest is not None:
            latest.head = version
            latest.metrics = metrics
            latest.save(update_fields=["head", "metrics"])
        job.result = {**job.result, "head": version.pk, "accuracy": metrics.get("accuracy"), "feature_set": chosen}
        job_progress(job=job, done=1, total=3)
        job.save(update_fields=["result"])
    return version


def head_load(version: ModelVersion):
    with default_storage.open(version.artifact, "rb") as handle:
        return LinearHead.load(io.BytesIO(handle.read()))


def retrain_predict(*, job_id: int) -> int:
    """Predict every embedded pool image with the new head; auto-accept where allowed."""
    job = Job.objects.select_related("project").get(pk=job_id)
    project = job.project
    version = ModelVersion.objects.get(pk=job.result["head"])
    ids, X = feature_matrix(head_feature_set(version))
    head = head_load(version)
    proba = head.predict_proba(X)
    categories = {c.key: c for c in project.categories.all()}
    classes = [categories[str(k)] for k in head.classes_]
    best = proba.argmax(axis=1)
    # Shannon entropy per row, for the item browser's "most uncertain first".
    entropies = -(proba * np.log(np.where(proba > 0, proba, 1.0))).sum(axis=1)
    rows = [
        Prediction(
            image_id=int(pk),
            model_version=version,
            category=classes[b],
            confidence=float(p[b]),
            entropy=float(h),
            probabilities={c.key: round(float(v), 5) for c, v in zip(classes, p, strict=True)},
        )
        for pk, p, b, h in zip(ids, proba, best, entropies, strict=True)
    ]
    for start in range(0, len(rows), 5000):
        Prediction.objects.bulk_create(rows[start : start + 5000], ignore_conflicts=True)
    accepted = _auto_accept(project, version, ids, proba, classes) if project.auto_accept else 0
    job.result = {**job.result, "predicted": len(rows), "auto_accepted": accepted}
    job.save(update_fields=["result"])
    job_progress(job=job, done=2, total=3)
    return len(rows)


def _auto_accept(project, version, ids, proba, classes) -> int:
    """Label pool items by model where the head is precise enough on the evaluation split.

    For each category, the threshold is the lowest score at which the head's precision on
    the evaluation split reaches ``project.auto_accept_precision`` with at least
    ``auto_accept_min_support`` evaluation items of that category; pool items without
    human labels scoring above it get a model label, which the queue skips.
    """
    curves = version.metrics.get("pr_curves") or {}
    per_class = version.metrics.get("per_class") or {}
    labeled = set(human_labeled_images(project=project).values_list("pk", flat=True))
    eval_ids = set(_pool(project).filter(split=Image.Split.EVAL).values_list("pk", flat=True))
    total = 0
    for j, category in enumerate(classes):
        curve = curves.get(category.key)
        support = (per_class.get(category.key) or {}).get("support", 0)
        if not curve or support < project.auto_accept_min_support:
            continue
        threshold = _threshold_for_precision(curve, project.auto_accept_precision)
        if threshold is None:
            continue
        hits = [
            int(pk)
            for pk, p in zip(ids, proba[:, j], strict=True)
            if p >= threshold and int(pk) not in labeled and int(pk) not in eval_ids
        ]
        total += Image.objects.filter(pk__in=hits, model_label__isnull=True).update(
            model_label=category, model_label_version=version, model_label_confidence=threshold
        )
    return total


def _threshold_for_precision(curve: dict, target: float) -> float | None:
    precision, thresholds = curve.get("precision", []), curve.get("thresholds", [])
    for p, t in zip(precision, thresholds, strict=False):
        if p >= target:
            return float(t)
    return None


def retrain_select(*, job_id: int) -> Round | None:
    """Select the next batch with the project's strategy and open a round with it."""
    job = Job.objects.select_related("project").get(pk=job_id)
    project = job.project
    queued = QueueItem.objects.filter(round__project=project).values_list("image_id", flat=True)
    candidates = np.asarray(
        _pool(project)
        .filter(split=Image.Split.POOL, model_label__isnull=True)
        .exclude(pk__in=queued)
        .exclude(pk__in=human_labeled_images(project=project).values("pk"))
        .order_by("pk")
        .values_list("pk", flat=True),
        dtype=np.int64,
    )
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        number = Round.objects.filter(project=project).order_by("-number").values_list("number", flat=True).first()
        if not len(candidates):
            job_succeed(job=job, result={**job.result, "next_round": None, "selected": 0})
            return None
        chosen, strategy = _select(
            project, candidates, budget=project.batch_size, strategy=project.strategy, seed=(number or 0) + 1
        )
        round_ = Round.objects.create(
            project=project, number=(number if number is not None else -1) + 1, strategy=strategy
        )
        _fill(round_, chosen, eval_ids=np.zeros(0, dtype=np.int64), seed=round_.number)
        job_succeed(job=job, result={**job.result, "next_round": round_.number, "selected": len(chosen)})
    return round_


def _select(
    project: Project, candidates: np.ndarray, *, budget: int, strategy: str, seed: int
) -> tuple[np.ndarray, str]:
    """Pick up to ``budget`` image ids among ``candidates`` (ids) with ``strategy``.

    The rule is ``ml.loop.choose_batch``, the one the label-efficiency benchmark runs:
    the cold start until a head exists, then the strategy over the head's features and
    probabilities. Labeled pool images seed diversity. Without embeddings the choice is
    a seeded random sample.
    """

    head = _active(project, ModelVersion.Kind.HEAD)
    feature_set = head_feature_set(head) if head is not None else cold_start_feature_set(project)
    ids, X = feature_matrix(feature_set) if feature_set is not None else (np.zeros(0, dtype=np.int64), None)
    if not len(ids):
        rng = np.random.default_rng(seed)
        return rng.permutation(candidates)[:budget], SelectionStrategy.RANDOM
    available = np.isin(ids, candidates)
    if not available.any():
        return candidates[:0], strategy
    labeled_ids = human_labeled_images(project=project).values_list("pk", flat=True)
    labeled = np.flatnonzero(np.isin(ids, np.fromiter(labeled_ids, dtype=np.int64)))
    exclude = np.setdiff1d(np.flatnonzero(~available), labeled)
    proba = head_load(head).predict_proba(X) if head is not None and strategy in NEEDS_PROBA else None
    picked, used = choose_batch(
        strategy, X=X, proba=proba, budget=budget, labeled=labeled, exclude=exclude, random_state=seed
    )
    return ids[picked], used


def _fill(round_: Round, chosen: np.ndarray, *, eval_ids: np.ndarray, seed: int) -> None:
    """Queue the round's items: selected ones by rank, evaluation items spread among them,
    and the project's gold items, which the queue mixes in at the project's gold rate."""
    rng = np.random.default_rng(seed)
    n = len(chosen)
    items = [QueueItem(round=round_, image_id=int(pk), priority=float(n - rank)) for rank, pk in enumerate(chosen)]
    gold = Image.objects.filter(project=round_.project, is_gold=True).exclude(pk__in=[int(pk) for pk in chosen])
    items += [QueueItem(round=round_, image_id=pk, is_gold=True) for pk in gold.values_list("pk", flat=True)]
    items += [
        QueueItem(round=round_, image_id=int(pk), priority=float(rng.uniform(0, max(n, 1))), is_eval=True)
        for pk in eval_ids
    ]
    QueueItem.objects.bulk_create(items, batch_size=5000)
