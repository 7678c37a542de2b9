"""Reads for the admins' project dashboard.

Each function takes a project the caller has already checked access to (through
``project_get_for_user(..., admin=True)``) and returns plain data, SVG strings included,
that the template renders as it is.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, Q
from django.urls import reverse
from django.utils import timezone

from labeling import charts
from labeling.adapters import embeddings_matrix
from labeling.models import (
    Annotation,
    Embedding,
    Image,
    Job,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    Reveal,
    Round,
)
from labeling.selectors.flags import open_flag_counts
from labeling.selectors.images import class_balance
from labeling.selectors.labels import final_labels_of, human_labeled_images

DASHBOARD_JOB_KINDS = (Job.Kind.IMPORT, Job.Kind.PRETRAIN, Job.Kind.EMBED, Job.Kind.RETRAIN)
MAP_MAX_POINTS = 2000
MAP_SEED = 0


def project_dashboard(*, project: Project) -> dict:
    """Everything the dashboard page shows."""
    colors = charts.category_colors([c.key for c in project.categories.all()])
    return {
        "overview": dashboard_overview(project=project),
        "backbones": backbones_overview(project=project),
        "jobs": dashboard_jobs(project=project),
        "rounds": rounds_with_metrics(project=project),
        "learning_curve": learning_curve(project=project),
        "pr_curves": pr_curves(project=project, colors=colors),
        "distribution": class_distribution(project=project, colors=colors),
        "throughput": moderator_throughput(project=project),
        "embedding_map": embedding_map(project=project, colors=colors),
    }


def _active(project: Project, kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, kind=kind, is_active=True).first()


def _start_of_today():
    return timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)


def dashboard_overview(*, project: Project) -> dict:
    """Headline counts, the active models and what the admin actions may do now."""
    backbone = _active(project, ModelVersion.Kind.BACKBONE)
    head = _active(project, ModelVersion.Kind.HEAD)
    accepted = Image.objects.filter(project=project, status=Image.Status.ACCEPTED)
    current = Round.objects.filter(project=project, status=Round.Status.OPEN).order_by("number").first()
    progress = None
    if current is not None:
        progress = current.items.aggregate(total=Count("pk"), done=Count("pk", filter=Q(done=True)))
    loss = backbone.loss_curve[-1][1] if backbone is not None and backbone.loss_curve else None
    return {
        "accepted": accepted.count(),
        "eval_split": accepted.filter(split=Image.Split.EVAL).count(),
        "embedded": Embedding.objects.filter(model_version=backbone).count() if backbone else 0,
        "human_labeled": human_labeled_images(project=project).filter(status=Image.Status.ACCEPTED).count(),
        "rounds": Round.objects.filter(project=project).count(),
        "current_round": current,
        "current_progress": progress,
        "backbone": backbone,
        "backbone_preset": (backbone.config.get("preset") or backbone.config.get("source", "")) if backbone else "",
        "backbone_loss": loss,
        "head": head,
        "head_accuracy": head.metrics.get("accuracy") if head else None,
        "head_macro_f1": head.metrics.get("macro_f1") if head else None,
        "can_start_round": not Round.objects.filter(project=project).exists() and accepted.exists(),
        "can_embed": backbone is not None,
        "open_flags": open_flag_counts(project=project),
    }


def backbones_overview(*, project: Project) -> dict:
    """Each embedding of the pool (image backbones, the text model) with its coverage, and
    the active head's evidence: the cross-validated score of every candidate feature set."""
    accepted = Image.objects.filter(project=project, status=Image.Status.ACCEPTED).count()
    head = _active(project, ModelVersion.Kind.HEAD)
    used = set((head.config.get("features") or []) if head else [])
    counts = dict(
        Embedding.objects.filter(model_version__project=project)
        .values_list("model_version")
        .annotate(n=Count("pk"))
        .values_list("model_version", "n")
    )
    versions = ModelVersion.objects.filter(
        project=project, kind__in=[ModelVersion.Kind.BACKBONE, ModelVersion.Kind.TEXT]
    ).order_by("kind", "pk")
    rows = [
        {
            "version": v,
            "label": v.short_name,
            "kind": v.get_kind_display(),
            "source": v.config.get("source")
            or (f"MSN {v.config['preset']} on this pool" if v.config.get("preset") else ""),
            "embedded": counts.get(v.pk, 0),
            "accepted": accepted,
            "active": v.is_active,
            "used": v.pk in used,
        }
        for v in versions
    ]
    selection = (head.metrics.get("feature_selection") or {}) if head else {}
    comparison = [
        {"name": name, **score, "chosen": name == selection.get("chosen")}
        for name, score in sorted((selection.get("scores") or {}).items(), key=lambda kv: kv[1]["log_loss"])
    ]
    return {
        "rows": rows,
        "head": head,
        "feature_set": head.metrics.get("feature_set") if head else None,
        "comparison": comparison,
        "criterion": selection.get("criterion"),
        "classifier_url": reverse("api-classifier-download", args=[project.slug, head.pk]) if head else None,
        "card_url": reverse("api-classifier-card", args=[project.slug, head.pk]) if head else None,
    }


def dashboard_jobs(*, project: Project, limit: int = 12) -> dict:
    """The latest jobs (with progress) and, per kind, the latest job when it failed."""
    jobs = list(
        Job.objects.filter(project=project, kind__in=DASHBOARD_JOB_KINDS)
        .select_related("created_by")
        .order_by("-created", "-pk")[:limit]
    )
    failed = []
    for kind in DASHBOARD_JOB_KINDS:
        latest = Job.objects.filter(project=project, kind=kind).order_by("-created", "-pk").first()
        if latest is not None and latest.status == Job.Status.FAILED:
            failed.append(latest)
    return {
        "recent": jobs,
        "failed": failed,
        "running": [j for j in jobs if j.status in (Job.Status.PENDING, Job.Status.RUNNING)],
    }


def rounds_with_metrics(*, project: Project) -> list[dict]:
    """Every round, newest first, with its items, labels and its head's evaluation.

    A round's metrics are those of the head fitted when it was the latest round; the
    per-class rows follow the project's taxonomy order.
    """
    names = {c.key: c.name for c in project.categories.all()}
    labels = dict(
        Annotation.objects.filter(round__project=project, kind=Annotation.Kind.LABEL)
        .values_list("round")
        .annotate(n=Count("pk"))
        .values_list("round", "n")
    )
    rounds = (
        Round.objects.filter(project=project)
        .annotate(
            items_total=Count("items"),
            items_done=Count("items", filter=Q(items__done=True)),
            items_eval=Count("items", filter=Q(items__is_eval=True)),
            items_skipped=Count("items", filter=Q(items__skipped=True)),
        )
        .order_by("-number")
    )
    rows = []
    for r in rounds:
        metrics = r.metrics or {}
        per_class = metrics.get("per_class") or {}
        rows.append(
            {
                "round": r,
                "labels": labels.get(r.pk, 0),
                "has_metrics": "accuracy" in metrics,
                "n_train": metrics.get("n_train"),
                "n_eval": metrics.get("n_eval"),
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
                "neutral_fpr": metrics.get("neutral_fpr"),
                "per_class": [
                    {"key": key, "name": names.get(key, key), **per_class[key]}
                    for key in [*names, *sorted(set(per_class) - set(names))]
                    if key in per_class
                ],
            }
        )
    latest = next((row for row in rows if row["has_metrics"]), None)
    for row in rows:
        row["expanded"] = row is latest
    return rows


def learning_curve(*, project: Project) -> dict:
    """Accuracy and macro-F1 on the evaluation split against the human labels each head
    was fitted on, one point per head, in the order the heads were fitted."""
    points = []
    for version in ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.HEAD).order_by("created", "pk"):
        m = version.metrics or {}
        if m.get("n_train") is None or m.get("accuracy") is None:
            continue
        points.append(
            {
                "head": version.pk,
                "n_train": m["n_train"],
                "n_eval": m.get("n_eval"),
                "accuracy": m["accuracy"],
                "macro_f1": m.get("macro_f1"),
            }
        )
    x = [p["n_train"] for p in points]
    series = [
        charts.Series("accuracy", x, [p["accuracy"] for p in points], label="accuracy", color="#0072b2"),
        charts.Series("macro_f1", x, [p["macro_f1"] for p in points], label="macro-F1", color="#d55e00", dashed=True),
    ]
    svg = charts.line_chart_svg(
        series,
        x_label="human labels used to fit the head",
        y_label="score on the evaluation split",
        title="Learning curve",
        x_range=(0, max(x, default=0) or 1),
        y_range=(0.0, 1.0),
        x_integer=True,
        empty_text="No head evaluated yet",
    )
    return {"points": points, "svg": svg}


def pr_curves(*, project: Project, colors: dict[str, str]) -> dict:
    """The active head's precision-recall curve per category on the evaluation split."""
    head = _active(project, ModelVersion.Kind.HEAD)
    curves = (head.metrics.get("pr_curves") or {}) if head else {}
    per_class = (head.metrics.get("per_class") or {}) if head else {}
    categories = list(project.categories.all())
    labels = {}
    for c in categories:
        ap = (per_class.get(c.key) or {}).get("average_precision")
        labels[c.key] = f"{c.name} (AP {ap:.2f})" if ap is not None else c.name
    ordered = {c.key: curves[c.key] for c in categories if c.key in curves}
    return {
        "head": head,
        "without_positives": [labels.get(k, k) for k, curve in ordered.items() if not curve],
        "svg": charts.pr_curves_svg(ordered, labels=labels, colors=colors),
    }


def class_distribution(*, project: Project, colors: dict[str, str]) -> dict:
    """The class balance, with what the active head predicts and what it auto-accepted."""
    balance = class_balance(project=project)
    head = _active(project, ModelVersion.Kind.HEAD)
    predicted = {}
    if head is not None:
        predicted = dict(
            Prediction.objects.filter(model_version=head)
            .values_list("category__key")
            .annotate(n=Count("pk"))
            .values_list("category__key", "n")
        )
    top = max([r["total"] for r in balance["categories"]] + list(predicted.values()) + [1])
    rows = [
        {
            **row,
            "color": colors.get(row["key"], charts.GREY),
            "predicted": predicted.get(row["key"], 0),
            "total_pct": round(100 * row["total"] / top, 1),
            "predicted_pct": round(100 * predicted.get(row["key"], 0) / top, 1),
        }
        for row in balance["categories"]
    ]
    return {**balance, "categories": rows, "head": head}


def moderator_throughput(*, project: Project) -> list[dict]:
    """Per member and per anyone who labeled: labels today and in total, the median
    seconds spent per label, today's reveals and their mean duration in seconds.

    Labels with no reported time (0 ms) are left out of the median.
    """
    today = _start_of_today()
    labels = Annotation.objects.filter(image__project=project, kind=Annotation.Kind.LABEL)
    counts = {
        row["user"]: row
        for row in labels.values("user").annotate(total=Count("pk"), today=Count("pk", filter=Q(created__gte=today)))
    }
    times: dict[int, list[int]] = defaultdict(list)
    for user_id, ms in (
        labels.filter(time_spent_ms__gt=0).values_list("user", "time_spent_ms").iterator(chunk_size=5000)
    ):
        times[user_id].append(ms)
    reveals = {
        row["user"]: row
        for row in Reveal.objects.filter(image__project=project, created__gte=today)
        .values("user")
        .annotate(n=Count("pk"), mean_ms=Avg("duration_ms"))
    }
    roles = dict(Membership.objects.filter(project=project).values_list("user", "role"))
    users = get_user_model().objects.filter(pk__in=set(roles) | set(counts) | set(reveals)).order_by("username")
    rows = []
    for user in users:
        c, r = counts.get(user.pk, {}), reveals.get(user.pk, {})
        rows.append(
            {
                "user": user,
                "role": roles.get(user.pk, ""),
                "labels_today": c.get("today", 0),
                "labels_total": c.get("total", 0),
                "median_seconds": statistics.median(times[user.pk]) / 1000 if times.get(user.pk) else None,
                "reveals_today": r.get("n", 0),
                "reveal_mean_seconds": r["mean_ms"] / 1000 if r.get("mean_ms") is not None else None,
            }
        )
    rows.sort(key=lambda row: (-row["labels_total"], row["user"].username))
    return rows


def embedding_map(
    *, project: Project, colors: dict[str, str], max_points: int = MAP_MAX_POINTS, seed: int = MAP_SEED
) -> dict:
    """A PCA map of a seeded sample of the active backbone's embeddings.

    Each point is coloured by the label a person decided (filled: adjudicated or
    consensus), else the active head's prediction (a ring), else grey, and links only to
    the blurred derivative.
    """
    backbone = _active(project, ModelVersion.Kind.BACKBONE)
    if backbone is None:
        return {"backbone": None, "svg": "", "shown": 0, "total": 0, "legend": []}
    all_ids = list(
        Embedding.objects.filter(model_version=backbone).order_by("image_id").values_list("image_id", flat=True)
    )
    picked = [all_ids[i] for i in charts.sample_indices(len(all_ids), max_points, random_state=seed)]
    ids, X = embeddings_matrix(model_version=backbone, image_ids=picked)
    coords = charts.pca_2d(X, random_state=seed) if len(ids) else X.reshape(0, 2)
    id_list = [int(pk) for pk in ids]
    consensus = {
        pk: final.category for pk, final in final_labels_of(project=project, image_ids=id_list).items() if final.human
    }
    head = _active(project, ModelVersion.Kind.HEAD)
    predicted = {}
    if head is not None:
        predicted = dict(
            Prediction.objects.filter(model_version=head, image_id__in=id_list).values_list("image_id", "category__key")
        )
    eval_ids = set(Image.objects.filter(pk__in=id_list, split=Image.Split.EVAL).values_list("pk", flat=True))
    names = {c.key: c.name for c in project.categories.all()}

    def known(pk: int) -> tuple[str, str]:
        if pk in consensus:
            return consensus[pk].key, "consensus"
        if pk in predicted:
            return predicted[pk], "prediction"
        return "", "none"

    # Human labels are drawn last, on top of predictions and unlabeled points.
    layer = {"none": 0, "prediction": 1, "consensus": 2}
    order = sorted(range(len(id_list)), key=lambda i: layer[known(id_list[i])[1]])
    coords = coords[order]
    groups, filled, attrs, titles = [], [], [], []
    tally: dict[tuple[str, str], int] = defaultdict(int)
    for pk in (id_list[i] for i in order):
        key, source = known(pk)
        tally[(key, source)] += 1
        name = names.get(key, key) or "unlabeled"
        groups.append(key)
        filled.append(source != "prediction")
        attrs.append(
            {
                "data-image-id": pk,
                "data-blurred-url": reverse("image-file", args=[pk, "blurred"]),
                "data-label": name,
                "data-source": source,
                "data-split": "eval" if pk in eval_ids else "pool",
            }
        )
        titles.append(f"image {pk}: {name}" + {"consensus": " (human)", "prediction": " (predicted)"}.get(source, ""))
    svg = charts.scatter_svg(
        coords, groups, colors=colors, filled=filled, point_attrs=attrs, titles=titles, title="Embedding map (PCA)"
    )
    legend = [
        {
            "key": c.key,
            "name": c.name,
            "color": colors.get(c.key, charts.GREY),
            "consensus": tally.get((c.key, "consensus"), 0),
            "predicted": tally.get((c.key, "prediction"), 0),
        }
        for c in project.categories.all()
    ]
    return {
        "backbone": backbone,
        "svg": svg,
        "shown": len(id_list),
        "total": len(all_ids),
        "unlabeled": tally.get(("", "none"), 0),
        "legend": legend,
        "grey": charts.GREY,
    }
