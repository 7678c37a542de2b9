"""Rounds and the retraining chain on synthetic embeddings (no MSN needed)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from labeling.adapters import vector_to_bytes
from labeling.errors import ApplicationError
from labeling.models import (
    Annotation,
    Embedding,
    Image,
    Job,
    ModelVersion,
    Prediction,
    QueueItem,
    Round,
)
from labeling.services.queue import annotation_submit, queue_next
from labeling.services.rounds import retrain_job_queue, round_start_initial
from tests.labeling.factories import CLUSTER_KEYS, clustered_pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(project):
    return clustered_pool(project)


def label_round(user, project, truth):
    while (lease := queue_next(user=user, project=project)) is not None:
        annotation_submit(
            user=user, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=truth[lease.item.image_id]
        )


def test_round_zero_has_the_eval_split_and_a_cold_start(project, pool):
    round_ = round_start_initial(project=project)
    assert round_.strategy == "prototypes"
    eval_items = round_.items.filter(is_eval=True)
    assert eval_items.count() == 30
    assert set(eval_items.values_list("image__split", flat=True)) == {"eval"}
    chosen = round_.items.filter(is_eval=False)
    assert chosen.count() == 12 and set(chosen.values_list("image__split", flat=True)) == {"pool"}
    with pytest.raises(ApplicationError, match="already has rounds"):
        round_start_initial(project=project)


def test_a_finished_round_retrains_predicts_and_fills_the_next(
    project, pool, moderator, django_capture_on_commit_callbacks
):
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        label_round(moderator, project, pool)

    job = Job.objects.get(kind="retrain")
    assert job.status == "succeeded", job.error
    head = ModelVersion.objects.get(kind="head", is_active=True)
    assert head.metrics["n_eval"] == 30 and head.metrics["accuracy"] > 0.9
    assert set(head.metrics["per_class"]) == set(CLUSTER_KEYS)
    zero, one = Round.objects.order_by("number")
    assert zero.status == "closed" and zero.head == head and zero.metrics["accuracy"] == head.metrics["accuracy"]
    assert one.number == 1 and one.status == "open" and one.strategy == "combined"
    assert one.items.count() == 12
    assert Prediction.objects.filter(model_version=head).count() == 120
    labeled = set(QueueItem.objects.filter(round=zero).values_list("image_id", flat=True))
    assert not labeled & set(one.items.values_list("image_id", flat=True)), "nothing is selected twice"
    assert not one.items.filter(image__split="eval").exists(), "the eval split is never selected"


def test_a_failed_step_leaves_the_previous_head_active(project, pool, moderator, django_capture_on_commit_callbacks):
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        label_round(moderator, project, pool)
    head = ModelVersion.objects.get(kind="head", is_active=True)

    Embedding.objects.all().delete()
    with pytest.raises(ApplicationError), django_capture_on_commit_callbacks(execute=True):
        retrain_job_queue(project=project, reason="test")
    failed = Job.objects.filter(kind="retrain").latest("pk")
    assert failed.status == "failed" and "embeddings" in failed.error
    assert ModelVersion.objects.get(kind="head", is_active=True) == head


def test_auto_accept_labels_confident_pool_items_as_model_labels(
    project, pool, moderator, django_capture_on_commit_callbacks
):
    project.auto_accept, project.auto_accept_precision, project.auto_accept_min_support = True, 0.9, 5
    project.save()
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        label_round(moderator, project, pool)
    model_labeled = Image.objects.filter(model_label__isnull=False)
    assert model_labeled.count() > 20
    assert not model_labeled.filter(annotations__kind="label").exists()
    assert not model_labeled.filter(split="eval").exists()
    correct = sum(pool[i.pk] == i.model_label.key for i in model_labeled)
    assert correct / model_labeled.count() >= 0.9
    left = Image.objects.filter(split="pool", model_label__isnull=True).exclude(annotations__kind="label")
    next_round = Round.objects.filter(number=1).first()
    queued = set(next_round.items.values_list("image_id", flat=True)) if next_round else set()
    # Round 0's prototypes teach the head all three clusters: every pool item left is
    # auto-accepted, and no round opens for items a human no longer needs to see.
    assert not left.exists() and next_round is None and not queued
    assert Job.objects.get(kind="retrain").result["next_round"] is None
    assert not QueueItem.objects.filter(round__number=1, image__model_label__isnull=False).exists()


def test_the_head_reads_the_feature_set_that_cross_validates_best(
    project, pool, moderator, django_capture_on_commit_callbacks
):
    informative = ModelVersion.objects.get(kind="backbone")
    noise = ModelVersion.objects.create(project=project, kind="backbone", name="vit", config={"preset": "tiny"})
    text = ModelVersion.objects.create(
        project=project, kind="text", name="minilm-l6", is_active=True, config={"dim": 8}
    )
    rng = np.random.default_rng(1)
    for version, dim in ((noise, 16), (text, 8)):
        Embedding.objects.bulk_create(
            Embedding(image_id=pk, model_version=version, vector=vector_to_bytes(v / np.linalg.norm(v)))
            for pk, v in zip(pool, rng.normal(size=(len(pool), dim)), strict=True)
        )
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        label_round(moderator, project, pool)

    head = ModelVersion.objects.get(kind="head", is_active=True)
    selection = head.metrics["feature_selection"]
    names = {f"vit-{informative.pk}", f"msn-tiny-{noise.pk}"}
    assert set(selection["scores"]) == names | {f"{n}+text" for n in names} | {
        f"vit-{informative.pk}+msn-tiny-{noise.pk}",
        f"vit-{informative.pk}+msn-tiny-{noise.pk}+text",
    }
    assert selection["chosen"] == head.metrics["feature_set"] == f"vit-{informative.pk}"
    assert head.config["features"] == [informative.pk]
    scores = selection["scores"]
    assert (
        scores[f"vit-{informative.pk}"]["balanced_accuracy"] > scores[f"msn-tiny-{noise.pk}"]["balanced_accuracy"] + 0.3
    )
    assert head.metrics["accuracy"] > 0.9


def test_a_head_on_fused_features_predicts_and_selects_on_the_same_features(
    project, pool, moderator, django_capture_on_commit_callbacks
):
    backbone = ModelVersion.objects.get(kind="backbone")
    text = ModelVersion.objects.create(
        project=project, kind="text", name="minilm-l6", is_active=True, config={"dim": 4}
    )
    # The text alone tells the classes apart as well as the image does: fusing both wins.
    keys = sorted(set(pool.values()))
    Embedding.objects.bulk_create(
        Embedding(image_id=pk, model_version=text, vector=vector_to_bytes(np.eye(4, dtype=np.float32)[keys.index(key)]))
        for pk, key in pool.items()
    )
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        label_round(moderator, project, pool)
    head = ModelVersion.objects.get(kind="head", is_active=True)
    assert head.config["features"] == [backbone.pk, text.pk]
    assert head.metrics["feature_set"] == f"vit-{backbone.pk}+text"
    assert Prediction.objects.filter(model_version=head).count() == 120
    assert Round.objects.get(number=1).items.count() == 12


def test_an_item_everyone_skipped_closes_and_the_round_moves_on(
    project, pool, moderator, make_user, django_capture_on_commit_callbacks
):
    from labeling.models import Membership
    from labeling.services.projects import membership_set

    second = make_user("second")
    membership_set(project=project, user=second, role=Membership.Role.MODERATOR)
    round_start_initial(project=project)
    lease = queue_next(user=moderator, project=project)
    skipped_item = lease.item
    annotation_submit(user=moderator, item_id=skipped_item.pk, client_key="skip-1", kind="skip")
    skipped_item.refresh_from_db()
    assert not skipped_item.done, "the other moderator may still label it"

    handed = []
    while (lease := queue_next(user=second, project=project)) is not None and lease.item.pk != skipped_item.pk:
        handed.append(lease)
        annotation_submit(
            user=second, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=pool[lease.item.image_id]
        )
    assert lease is not None and lease.item.pk == skipped_item.pk, "a skipped item goes to another moderator"
    with django_capture_on_commit_callbacks(execute=True):
        annotation_submit(user=second, item_id=skipped_item.pk, client_key="skip-2", kind="skip")
        label_round(second, project, pool)
        label_round(moderator, project, pool)
    skipped_item.refresh_from_db()
    assert skipped_item.done and skipped_item.skipped and skipped_item.labels_count == 0
    zero = Round.objects.get(number=0)
    assert zero.status == "closed", "an item everyone skipped does not hold the round open"
    assert Job.objects.get(kind="retrain").status == "succeeded"


def test_undoing_the_last_skip_reopens_the_item(project, pool, moderator):
    from labeling.services.queue import annotation_undo

    round_start_initial(project=project)
    lease = queue_next(user=moderator, project=project)
    annotation_submit(user=moderator, item_id=lease.item.pk, client_key="skip", kind="skip")
    lease.item.refresh_from_db()
    assert lease.item.skipped and lease.item.done, "the only member skipped it"
    annotation_undo(user=moderator, project=project, client_key="undo")
    lease.item.refresh_from_db()
    assert not lease.item.skipped and not lease.item.done
    assert queue_next(user=moderator, project=project).item == lease.item


def test_folder_pre_labels_seed_the_head_only_when_the_project_says_so(
    project, pool, moderator, django_capture_on_commit_callbacks
):
    from labeling.models import Category
    from labeling.selectors.images import class_balance
    from labeling.services.rounds import retrain_job_queue

    categories = {c.key: c for c in Category.objects.filter(project=project)}
    for pk, key in pool.items():
        Image.objects.filter(pk=pk).update(source_label=categories[key])
    round_start_initial(project=project)
    with (
        pytest.raises(ApplicationError, match="at least two categories"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        retrain_job_queue(project=project, reason="no human labels yet")

    project.weak_labels = True
    project.save()
    with django_capture_on_commit_callbacks(execute=True):
        retrain_job_queue(project=project, reason="weak labels")
    head = ModelVersion.objects.get(kind="head", is_active=True)
    assert head.metrics["n_weak"] == head.metrics["n_train"] == 90
    assert head.metrics["n_eval"] == 0, "weak labels never score the head"
    assert class_balance(project=project)["labeled"] == 120
    assert not Annotation.objects.exists(), "weak labels are not human labels"


def test_rounds_select_through_the_rule_the_benchmark_measures(project, pool, monkeypatch):
    import ml.loop

    calls = []
    real = ml.loop.choose_batch

    def spy(strategy, **kwargs):
        calls.append((strategy, kwargs["budget"], kwargs["proba"] is None))
        return real(strategy, **kwargs)

    from labeling.services import rounds

    assert rounds.choose_batch is real, "the rounds call ml.loop's rule itself"
    monkeypatch.setattr(rounds, "choose_batch", spy)
    round_start_initial(project=project)
    assert calls == [("prototypes", 12, True)]


def test_the_queue_never_hands_out_an_item_the_head_labeled(project, pool, moderator):
    from labeling.models import Category

    round_start_initial(project=project)
    first = queue_next(user=moderator, project=project).item
    ahead = (
        QueueItem.objects.filter(round=first.round, done=False, is_eval=False)
        .exclude(pk=first.pk)
        .order_by("-priority", "pk")
        .first()
    )
    Image.objects.filter(pk=ahead.image_id).update(model_label=Category.objects.get(project=project, key="drugs"))
    annotation_submit(user=moderator, item_id=first.pk, client_key="one", category_key=pool[first.image_id])
    handed = []
    while (lease := queue_next(user=moderator, project=project)) is not None:
        handed.append(lease.item.pk)
        annotation_submit(
            user=moderator, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=pool[lease.item.image_id]
        )
    assert handed and ahead.pk not in handed
