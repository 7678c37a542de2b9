"""The loop that runs itself: import -> embedding jobs -> round 0 -> labels -> retrain,
with the pretrained default backbone and real generated images, no button pressed."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.adapters import embeddings_matrix
from labeling.models import Image, Job, ModelVersion, Round
from labeling.services.queue import annotation_submit, queue_next
from tests import imagefiles as f

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def pattern_uploads(n_per_class: int) -> tuple[list[SimpleUploadedFile], dict[str, str]]:
    files, truth = [], {}
    for pattern, key in zip(f.PATTERNS, ("violence", "neutral"), strict=True):
        for seed in range(n_per_class):
            name = f"{pattern}-{seed}.jpg"
            files.append(SimpleUploadedFile(name, f.pattern_jpeg(pattern, seed)))
            truth[name] = key
    return files, truth


def label_open_rounds(user, project, truth_by_name: dict[str, str]) -> int:
    labeled = 0
    while (lease := queue_next(user=user, project=project)) is not None:
        annotation_submit(
            user=user,
            item_id=lease.item.pk,
            client_key=uuid.uuid4().hex,
            category_key=truth_by_name[lease.item.image.name.rsplit("/", 1)[-1]],
        )
        labeled += 1
    return labeled


def test_an_api_project_embeds_its_import_and_opens_round_zero_by_itself(
    api, make_user, moderator, django_capture_on_commit_callbacks
):
    staff = make_user("staff", is_staff=True)
    client = api(staff)
    created = client.post(
        "/api/projects/",
        {"slug": "fresh", "name": "Fresh", "batch_size": 6, "overlap": 1, "eval_fraction": 0.2},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["auto_start"] is True and created.json()["ocr"] is True
    files, _ = pattern_uploads(8)
    files.append(SimpleUploadedFile("caption.jpg", f.meme_jpeg("STOP VIOLENCE", seed=3)))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/projects/fresh/uploads/", {"files": files}, format="multipart")
    assert response.status_code == 202, response.content

    jobs = {j.params.get("model", j.kind): j for j in Job.objects.filter(project__slug="fresh")}
    assert {k: j.status for k, j in jobs.items()} == {
        "import": "succeeded",
        "efficientnet-lite0": "succeeded",
        "minilm-l6": "succeeded",
    }
    backbone = ModelVersion.objects.get(project__slug="fresh", kind="backbone")
    assert backbone.name == "efficientnet-lite0" and backbone.is_active
    ids, X = embeddings_matrix(model_version=backbone)
    assert X.shape == (17, 1280)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-4)

    zero = Round.objects.get(project__slug="fresh")
    assert zero.number == 0 and zero.strategy == "prototypes", "round 0 is chosen on real embeddings"
    assert zero.items.filter(is_eval=False).count() == 6 and zero.items.filter(is_eval=True).count() == 4

    caption = Image.objects.get(project__slug="fresh", name__endswith="caption.jpg")
    assert {"STOP", "VIOLENCE"} <= set(caption.ocr_text.upper().split())
    listed = client.get("/api/projects/fresh/images/", {"text": "violence"}).json()
    assert [row["id"] for row in listed["results"]] == [caption.pk]


def test_a_project_that_does_not_start_itself_waits_for_its_admin(api, make_user, django_capture_on_commit_callbacks):
    client = api(make_user("staff", is_staff=True))
    client.post("/api/projects/", {"slug": "manual", "auto_start": False}, format="json")
    files, _ = pattern_uploads(2)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/projects/manual/uploads/", {"files": files}, format="multipart")
    assert list(Job.objects.filter(project__slug="manual").values_list("kind", flat=True)) == ["import"]
    assert not Round.objects.filter(project__slug="manual").exists()


def test_the_loop_learns_from_round_zero_without_a_button(api, make_user, django_capture_on_commit_callbacks):
    staff = make_user("staff", is_staff=True)
    client = api(staff)
    client.post(
        "/api/projects/",
        {"slug": "loop", "batch_size": 10, "overlap": 1, "eval_fraction": 0.25, "ocr": False, "gold_rate": 0},
        format="json",
    )
    moderator = make_user("mod")
    from labeling.models import Project
    from labeling.services.projects import membership_set

    project = Project.objects.get(slug="loop")
    membership_set(project=project, user=moderator, role="moderator")
    files, truth = pattern_uploads(12)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/projects/loop/uploads/", {"files": files}, format="multipart")
    with django_capture_on_commit_callbacks(execute=True):
        labeled = label_open_rounds(moderator, project, truth)
    assert labeled == 16, "round 0: 10 cold-start items and 6 evaluation items"

    retrain = Job.objects.get(project=project, kind="retrain")
    assert retrain.status == "succeeded", retrain.error
    head = ModelVersion.objects.get(project=project, kind="head", is_active=True)
    assert head.metrics["feature_set"] == "efficientnet-lite0"
    assert head.metrics["n_eval"] == 6 and head.metrics["accuracy"] >= 5 / 6
    assert Round.objects.get(project=project, number=1).strategy == "combined"
