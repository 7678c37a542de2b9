"""Rounds and the retraining chain on synthetic embeddings (no MSN needed)."""

from __future__ import annotations

import uuid

import pytest

from labeling.errors import ApplicationError
from labeling.models import Image, Job, ModelVersion, Prediction, QueueItem, Round
from labeling.services.queue import annotation_submit, queue_next
from labeling.services.rounds import retrain_job_submit, round_start_initial
from tests.labeling.factories import CLUSTER_KEYS, clustered_pool

pytestmark = pytest.mark.django_db



@pytest.fixture
def pool(project):
    return clustered_pool(project)


def label_round(user, project, truth):
    while (lease := queue_next(user=user, project=project)) is not None:
        annotation_submit(user=user, item_id=lease.item.pk, client_key=uuid.uuid4().hex,
                          category_key=truth[lease.item.image_id])


def test_round_zero_has_the_eval_split_and_a_cold_start(project, pool):
    round_ = round_start_initial(project=project)
    assert round_.strategy == "typicality"
    eval_items = round_.items.filter(is_eval=True)
    assert eval_items.count() == 30
    assert set(eval_items.values_list("image__split", flat=True)) == {"eval"}
    chosen = round_.items.filter(is_eval=False)
    assert chosen.count() == 12 and set(chosen.values_list("image__split", flat=True)) == {"pool"}
    with pytest.raises(ApplicationError, match="already has rounds"):
        round_start_initial(project=project)


def test_a_finished_round_retrains_predicts_and_fills_the_next(project, pool, moderator,
                                                               django_capture_on_commit_callbacks):
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

    ModelVersion.objects.filter(kind="backbone").update(is_active=False)
    with pytest.raises(ApplicationError), django_capture_on_commit_callbacks(execute=True):
        retrain_job_submit(project=project, reason="test")
    failed = Job.objects.filter(kind="retrain").latest("pk")
    assert failed.status == "failed" and "embeddings" in failed.error
    assert ModelVersion.objects.get(kind="head", is_active=True) == head


def test_auto_accept_labels_confident_pool_items_as_model_labels(project, pool, moderator,
                                                                 django_capture_on_commit_callbacks):
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
    next_round = Round.objects.get(number=1)
    assert not next_round.items.filter(image__model_label__isnull=False).exists()
