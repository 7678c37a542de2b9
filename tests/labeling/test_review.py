"""Agreement, disagreement reports, adjudication and gold items over the API."""

from __future__ import annotations

import csv
import io
import uuid

import numpy as np
import pytest
from django.urls import reverse

from labeling.models import Adjudication, Annotation, Image
from labeling.services.projects import membership_set
from labeling.services.queue import annotation_submit, queue_next
from labeling.services.rounds import round_start_initial
from tests.labeling.factories import embedded_pool

pytestmark = pytest.mark.django_db

KEYS = ["violence", "drugs", "neutral"]


@pytest.fixture
def reviewed(project, admin_user, make_user, django_capture_on_commit_callbacks):
    """60 embedded images in three clusters; three moderators, overlap 3; one moderator
    is wrong on every fifth item; two items are mislabeled by everyone (label errors)."""
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(3, 16)) * 5
    truth_idx = np.repeat(np.arange(3), 20)
    _, images = embedded_pool(project, centers[truth_idx] + rng.normal(size=(60, 16)))
    truth = {image.pk: KEYS[t] for image, t in zip(images, truth_idx, strict=True)}
    project.overlap, project.batch_size, project.eval_fraction, project.gold_rate = 3, 60, 0.0, 0.0
    project.strategy = "random"
    project.save()
    mislabeled = {images[0].pk: "drugs", images[21].pk: "neutral"}
    users = []
    for name in ("ann", "bob", "cat"):
        user = make_user(name)
        membership_set(project=project, user=user, role="moderator")
        users.append(user)
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        for user in users:
            while (lease := queue_next(user=user, project=project)) is not None:
                image_id = lease.item.image_id
                key = mislabeled.get(image_id, truth[image_id])
                if user.username == "cat" and image_id % 5 == 0 and image_id not in mislabeled:
                    key = KEYS[(KEYS.index(key) + 1) % 3]
                annotation_submit(user=user, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=key)
    return {"truth": truth, "mislabeled": mislabeled, "users": users}


def test_agreement_report(api, project, admin_user, reviewed):
    report = api(admin_user).get(reverse("api-agreement", args=[project.slug])).json()
    assert report["items"] == 60 and report["annotations"] == 180
    assert 0.7 < report["fleiss"]["kappa"] < 1.0
    assert set(report["fleiss"]["per_category"]) == set(KEYS) | {"nsfw", "hateful_memes", "weapons"}
    assert 0.7 < report["krippendorff"]["alpha"] < 1.0
    by_user = {row["user"]: row for row in report["annotators"]}
    assert by_user["ann"]["accuracy_vs_consensus"] == 1.0
    assert by_user["cat"]["accuracy_vs_consensus"] < 0.9
    pairs = {(p["a"], p["b"]): p["kappa"] for p in report["pairs"]}
    assert pairs[("ann", "bob")] == 1.0 and pairs[("ann", "cat")] < 1.0


def test_annotator_disagreements_sorted_by_entropy_and_as_csv(api, project, admin_user, moderator, reviewed):
    url = reverse("api-disagreements", args=[project.slug])
    rows = api(admin_user).get(url).json()
    assert rows and all(r["agreement"] < 1.0 for r in rows)
    assert [r["entropy"] for r in rows] == sorted((r["entropy"] for r in rows), reverse=True)
    assert all(r["image_id"] % 5 == 0 for r in rows)
    response = api(admin_user).get(url, {"format": "csv"})
    assert response["Content-Type"] == "text/csv"
    parsed = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(parsed) == len(rows) and "entropy" in parsed[0]
    assert api(moderator).get(url).status_code == 403


def test_model_disagreements_find_the_planted_label_errors(api, project, admin_user, reviewed):
    rows = api(admin_user).get(reverse("api-model-disagreements", args=[project.slug])).json()
    flagged = {r["image_id"] for r in rows}
    assert set(reviewed["mislabeled"]) <= flagged
    assert len(flagged) <= 5
    for row in rows:
        if row["image_id"] in reviewed["mislabeled"]:
            assert row["predicted"] == reviewed["truth"][row["image_id"]]


def test_adjudication_keeps_history_and_wins_the_export(api, project, admin_user, moderator, reviewed):
    image = Image.objects.get(pk=next(iter(reviewed["mislabeled"])))
    url = reverse("api-adjudications", args=[image.pk])
    first = api(admin_user).post(url, {"category": "neutral", "reason": "looked again"}, format="json")
    second = api(admin_user).post(url, {"category": "violence", "reason": "policy 4.2"}, format="json")
    assert first.status_code == second.status_code == 201
    history = api(admin_user).get(url).json()
    assert [(h["category"], h["decided_by"], h["reason"]) for h in history] == [
        ("neutral", "alice", "looked again"),
        ("violence", "alice", "policy 4.2"),
    ]
    assert api(moderator).post(url, {"category": "drugs", "reason": "x"}, format="json").status_code == 403
    missing = api(admin_user).post(url, {"category": "drugs", "reason": " "}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["message"]
    assert Adjudication.objects.count() == 2 and Annotation.objects.filter(image=image).count() == 3
    rows = api(admin_user).get(
        reverse("api-export-stream", args=[project.slug]), {"format": "jsonl", "sources": "adjudicated"}
    )
    import json

    exported = [json.loads(line) for line in b"".join(rows.streaming_content).decode().splitlines()]
    assert [(r["image_id"], r["label"]) for r in exported] == [(image.pk, "violence")]


def test_gold_items_measure_annotators(api, project, admin_user, reviewed):
    for image_id, key in list(reviewed["truth"].items())[:20]:
        response = api(admin_user).post(reverse("api-gold", args=[image_id]), {"category": key}, format="json")
        assert response.status_code == 204
    report = api(admin_user).get(reverse("api-agreement", args=[project.slug])).json()
    by_user = {row["user"]: row for row in report["annotators"]}
    assert by_user["bob"]["accuracy_vs_gold"] < 1.0, "everyone labeled image 0 wrong"
    assert by_user["cat"]["accuracy_vs_gold"] < by_user["bob"]["accuracy_vs_gold"]


def test_review_page_adjudicates_and_exports(
    client, project, admin_user, moderator, reviewed, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    page = client.get(reverse("project-review", args=[project.slug])).content.decode()
    assert 'id="disagreements"' in page and 'id="model-disagreements"' in page
    assert "/blurred/" in page and "/original/" not in page and "/thumbnail/" not in page
    image_id = next(iter(reviewed["mislabeled"]))
    assert f'data-image-id="{image_id}"' in page
    response = client.post(
        reverse("project-review-adjudicate", args=[project.slug, image_id]),
        {"category": "violence", "reason": "reviewed"},
    )
    assert response.status_code == 302
    assert Adjudication.objects.get(image_id=image_id).category.key == "violence"
    csv_body = client.get(reverse("project-review-csv", args=[project.slug, "disagreements"])).content.decode()
    assert csv_body.startswith("image_id,")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("project-review-export", args=[project.slug]), {"format": "csv", "sources": ["adjudicated"]}
        )
    from labeling.models import Job

    job = Job.objects.get(kind="export")
    assert job.status == "succeeded" and job.result["rows"] == 1
    client.force_login(moderator)
    assert client.get(reverse("project-review", args=[project.slug])).status_code == 302


def test_review_forms_name_bad_input_and_change_nothing(client, project, admin_user, reviewed):
    from labeling.models import Job

    client.force_login(admin_user)
    image_id = next(iter(reviewed["mislabeled"]))
    page = client.post(
        reverse("project-review-export", args=[project.slug]), {"format": "jsonl", "min_agreement": "abc"}, follow=True
    ).content.decode()
    assert "min_agreement must be a number" in page and not Job.objects.filter(kind="export").exists()
    page = client.post(
        reverse("project-review-adjudicate", args=[project.slug, image_id]),
        {"category": "violence\x00", "reason": "x"},
        follow=True,
    ).content.decode()
    assert "Unknown category" in page
    client.post(
        reverse("project-review-adjudicate", args=[project.slug, image_id]),
        {"category": "violence", "reason": "fine\x00 print"},
    )
    assert Adjudication.objects.get().reason == "fine print"
