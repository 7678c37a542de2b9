"""Agreement and disagreement reports for admins.

The statistics themselves are ``ml.agreement``; this module turns the project's current
human labels into its arrays and shapes the answers.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
from django.contrib.auth import get_user_model
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from labeling.adapters import embeddings_matrix
from labeling.models import Image, ModelVersion, Project
from labeling.selectors.labels import LabelSource, current_votes, human_labels
from ml import agreement
from ml.head import LinearHead


def _label_arrays(project: Project) -> tuple[list[int], list[int], list[str], list[str]]:
    """Parallel lists (items, annotators, labels) of current human labels, and the taxonomy."""
    categories = dict(project.categories.values_list("pk", "key"))
    image_ids = Image.objects.filter(project=project, annotations__isnull=False).values_list("pk", flat=True)
    items, annotators, labels = [], [], []
    for image_id, votes in current_votes(set(image_ids)).items():
        for user_id, category_id in votes.items():
            items.append(image_id)
            annotators.append(user_id)
            labels.append(categories[category_id])
    order = list(project.categories.order_by("order", "key").values_list("key", flat=True))
    return items, annotators, labels, order


def _decided(project: Project) -> dict[int, str]:
    """The category key of every label a person decided (adjudicated or consensus)."""
    return {pk: final.category.key for pk, final in human_labels(project=project).items()}


def _usernames(ids) -> dict[int, str]:
    return dict(get_user_model().objects.filter(pk__in=list(ids)).values_list("pk", "username"))


def _gold(project: Project) -> dict[int, str]:
    return dict(
        Image.objects.filter(project=project, is_gold=True, gold_label__isnull=False).values_list(
            "pk", "gold_label__key"
        )
    )


def agreement_report(*, project: Project) -> dict:
    """Project-wide agreement, per category, per annotator pair and per annotator."""
    items, annotators, labels, categories = _label_arrays(project)
    if not items:
        return {
            "items": 0,
            "annotations": 0,
            "fleiss": None,
            "krippendorff": None,
            "pairs": [],
            "annotators": [],
            "dawid_skene": None,
        }
    names = _usernames(set(annotators))
    # The final label of each labeled item: an adjudication overrides the moderators' majority.
    decided = _decided(project)
    majority = {item: decided[item] for item in set(items) if item in decided}
    ds = agreement.dawid_skene(items, annotators, labels, categories)
    gold = _gold(project)
    vs_consensus = agreement.annotator_confusion(items, annotators, labels, categories, reference=majority)
    vs_gold = agreement.annotator_accuracy(items, annotators, labels, categories, reference=gold) if gold else {}
    per_annotator = []
    for user_id, confusion in vs_consensus.items():
        per_annotator.append(
            {
                "user": names.get(user_id, str(user_id)),
                "labels": confusion["n"],
                "accuracy_vs_consensus": confusion["accuracy"],
                "accuracy_vs_gold": vs_gold.get(user_id),
                "confusion": {"labels": confusion["labels"], "matrix": confusion["matrix"]},
            }
        )
    pairs = [
        {**pair, "a": names.get(pair["a"], pair["a"]), "b": names.get(pair["b"], pair["b"])}
        for pair in agreement.cohen_kappa_pairs(items, annotators, labels, categories)
    ]
    same = sum(ds.labels[item] == label for item, label in majority.items())
    return {
        "items": len(set(items)),
        "annotations": len(items),
        "fleiss": agreement.fleiss_kappa(items, annotators, labels, categories),
        "krippendorff": agreement.krippendorff_alpha_nominal(items, annotators, labels, categories),
        "pairs": pairs,
        "annotators": sorted(per_annotator, key=lambda row: row["user"]),
        "dawid_skene": {
            "agrees_with_majority": same / len(majority),
            "priors": ds.priors,
            "differs": sorted(i for i, lab in majority.items() if ds.labels[i] != lab),
        },
    }


def annotator_disagreements(*, project: Project, limit: int | None = None) -> list[dict]:
    """Items whose moderators disagree, the most uncertain (highest entropy) first."""
    items, annotators, labels, categories = _label_arrays(project)
    if not items:
        return []
    per_item = agreement.item_agreement(items, annotators, labels, categories)
    adjudicated = _adjudicated(project)
    decided = _decided(project)
    rows = [
        {
            "image_id": item,
            "annotators": info["n"],
            "agreement": info["agreement"],
            "entropy": info["entropy"],
            "majority": info["majority"],
            "votes": info["counts"],
            "adjudicated": adjudicated.get(item),
            "label": decided.get(item),
        }
        for item, info in per_item.items()
        if info["n"] >= 2 and info["agreement"] < 1.0
    ]
    rows.sort(key=lambda row: (-row["entropy"], row["agreement"], row["image_id"]))
    return rows[:limit] if limit else rows


def model_disagreements(*, project: Project, limit: int | None = None, threshold: float = 0.0) -> list[dict]:
    """Items where the model confidently disagrees with the human consensus: likely label
    errors, found in the spirit of confident learning.

    As confident learning requires, the probabilities are out-of-sample: a linear head
    is fitted on the consensus labels in stratified folds over the active backbone's
    embeddings, and each item is scored by the fold that did not train on it.
    """
    backbone = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.BACKBONE, is_active=True).first()
    if backbone is None:
        return []
    consensus = _decided(project)
    if not consensus:
        return []
    ids, X = embeddings_matrix(model_version=backbone, image_ids=list(consensus))
    counts = Counter(consensus[int(i)] for i in ids)
    keep = [n for n, i in enumerate(ids) if counts[consensus[int(i)]] >= 2]
    if len({consensus[int(ids[n])] for n in keep}) < 2:
        return []
    y = np.asarray([consensus[int(ids[n])] for n in keep])
    folds = min(5, min(counts[label] for label in set(y)))
    proba = cross_val_predict(
        LinearHead(C=1.0, calibrate=False, random_state=0),
        X[keep],
        y,
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=0),
        method="predict_proba",
    )
    classes = sorted(set(y))
    item_ids = [int(ids[n]) for n in keep]
    flagged = agreement.confident_disagreements(
        {i: consensus[i] for i in item_ids}, proba, item_ids, classes, threshold=threshold
    )
    adjudicated = _adjudicated(project)
    rows = [
        {
            "image_id": row["item"],
            **{k: v for k, v in row.items() if k != "item"},
            "adjudicated": adjudicated.get(row["item"]),
        }
        for row in flagged
    ]
    return rows[:limit] if limit else rows


def _adjudicated(project: Project) -> dict[int, str]:
    """The category key of each adjudicated image's final label."""
    return {
        pk: final.category.key
        for pk, final in human_labels(project=project).items()
        if final.source == LabelSource.ADJUDICATED
    }


def rows_to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: (v if not isinstance(v, dict) else ";".join(f"{a}={b}" for a, b in v.items())) for k, v in row.items()}
        )
    return buffer.getvalue()
