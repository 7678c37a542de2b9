"""The classifier out of Veil: the predict API and command, and the exported model file,
loaded in a fresh process without Veil, reproducing Veil's own predictions."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from labeling.models import Membership, ModelVersion, Project
from labeling.services.queue import annotation_submit, queue_next
from tests import imagefiles as f

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

KEYS = {"stripes": "violence", "discs": "neutral"}


@pytest.fixture
def trained(api, make_user, django_capture_on_commit_callbacks) -> tuple[Project, object, object]:
    """A project whose round 0 on real pattern images was labeled, and its active head."""
    from labeling.services.projects import membership_set

    admin = make_user("boss", is_staff=True)
    client = api(admin)
    client.post(
        "/api/projects/",
        {"slug": "clf", "batch_size": 10, "overlap": 1, "eval_fraction": 0.2, "ocr": False, "gold_rate": 0},
        format="json",
    )
    project = Project.objects.get(slug="clf")
    moderator = make_user("labeler")
    membership_set(project=project, user=moderator, role=Membership.Role.MODERATOR)
    files = [SimpleUploadedFile(f"{p}-{s}.jpg", f.pattern_jpeg(p, s)) for p in KEYS for s in range(10)]
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/projects/clf/uploads/", {"files": files}, format="multipart")
    with django_capture_on_commit_callbacks(execute=True):
        while (lease := queue_next(user=moderator, project=project)) is not None:
            name = lease.item.image.name.rsplit("/", 1)[-1]
            annotation_submit(
                user=moderator,
                item_id=lease.item.pk,
                client_key=uuid.uuid4().hex,
                category_key=KEYS[name.split("-")[0]],
            )
    assert ModelVersion.objects.filter(project=project, kind="head", is_active=True).exists()
    return project, admin, moderator


def new_images() -> list[tuple[str, bytes]]:
    """Pictures the head has never seen (other seeds), two of each kind."""
    return [(f"new-{p}-{s}.jpg", f.pattern_jpeg(p, 100 + s)) for p in KEYS for s in range(2)]


def test_predict_api_names_the_category_of_new_files_and_the_unreadable_one(trained, api):
    project, _, moderator = trained
    files = [SimpleUploadedFile(name, data) for name, data in new_images()]
    files.append(SimpleUploadedFile("broken.jpg", f.truncated_jpeg()))
    response = api(moderator).post("/api/projects/clf/predict/", {"files": files}, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    head = ModelVersion.objects.get(project=project, kind="head", is_active=True)
    assert body["head"] == head.pk and body["feature_set"] == "efficientnet-lite0"
    assert sorted(body["classes"]) == ["neutral", "violence"]
    predictions = body["predictions"]
    assert [p["file"] for p in predictions] == [name for name, _ in new_images()] + ["broken.jpg"]
    for row in predictions[:-1]:
        assert row["category"] == KEYS[row["file"].split("-")[1]]
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert predictions[-1]["error"] == "corrupt" and "category" not in predictions[-1]


def test_predict_refuses_what_it_cannot_take_and_strangers(trained, api, make_user, settings):
    _, admin, _ = trained
    settings.VEIL_PREDICT_MAX_FILES = 2
    too_many = [SimpleUploadedFile(name, data) for name, data in new_images()]
    response = api(admin).post("/api/projects/clf/predict/", {"files": too_many}, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == "too_many_files"
    settings.VEIL_PREDICT_MAX_BYTES = 1000
    big = [SimpleUploadedFile("big.jpg", f.pattern_jpeg("discs", 1))]
    response = api(admin).post("/api/projects/clf/predict/", {"files": big}, format="multipart")
    assert response.status_code == 400 and "big.jpg" in json.dumps(response.json())
    stranger = api(make_user("stranger")).post(
        "/api/projects/clf/predict/",
        {"files": [SimpleUploadedFile("a.jpg", f.pattern_jpeg("discs", 1))]},
        format="multipart",
    )
    assert stranger.status_code == 404


def test_predict_command_gives_the_api_answer(trained, api, tmp_path):
    _, admin, _ = trained
    folder = tmp_path / "incoming"
    folder.mkdir()
    for name, data in new_images():
        (folder / name).write_bytes(data)
    out = io.StringIO()
    call_command("predict", str(folder), project="clf", json=True, stdout=out)
    from_command = json.loads(out.getvalue())
    files = [SimpleUploadedFile(name, data) for name, data in sorted(new_images())]
    from_api = api(admin).post("/api/projects/clf/predict/", {"files": files}, format="multipart").json()
    assert [p["category"] for p in from_command["predictions"]] == [p["category"] for p in from_api["predictions"]]
    for a, b in zip(from_command["predictions"], from_api["predictions"], strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)


FRESH_PROCESS = r"""
import json, sys
import numpy as np
import torch
from PIL import Image

model = torch.export.load(sys.argv[1]).module()
card = json.load(open(sys.argv[2]))
spec = card["input"]
batch = []
for path in sys.argv[3:]:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    size = (spec["resize"], int(spec["resize"] * h / w)) if w <= h else (int(spec["resize"] * w / h), spec["resize"])
    image = image.resize(size, Image.BILINEAR)
    left = int(round((image.width - spec["crop"]) / 2.0))
    top = int(round((image.height - spec["crop"]) / 2.0))
    image = image.crop((left, top, left + spec["crop"], top + spec["crop"]))
    batch.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
with torch.inference_mode():
    proba = model(torch.stack(batch))
print(json.dumps({"classes": card["classes"], "proba": proba.tolist(),
                  "veil_loaded": any(m == "ml" or m.startswith(("ml.", "labeling", "django")) for m in sys.modules)}))
"""


def test_the_exported_classifier_reproduces_veils_predictions_without_veil(trained, api, tmp_path):
    project, admin, moderator = trained
    head = ModelVersion.objects.get(project=project, kind="head", is_active=True)
    listed = api(admin).get("/api/projects/clf/model-versions/", {"kind": "head"}).json()["results"]
    url = listed[0]["classifier_url"]
    assert url == f"/api/projects/clf/model-versions/{head.pk}/classifier/"
    assert api(moderator).get(url).status_code == 403, "the model file is for admins"
    response = api(admin).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["card.json", "classifier.pt2"]
    archive.extractall(tmp_path)
    card = json.loads((tmp_path / "card.json").read_text())
    assert [c["key"] for c in card["taxonomy"]] == head.config["classes"] == card["classes"]
    assert [b["name"] for b in card["backbones"]] == ["efficientnet-lite0"]
    assert card["input"]["crop"] == 224 and card["input"]["dtype"] == "uint8"
    assert card["training"]["labels"] == head.metrics["n_train"]
    assert card["evaluation"]["accuracy"] == head.metrics["accuracy"]
    assert card["evaluation"]["per_class"] == head.metrics["per_class"]
    assert api(admin).get(f"/api/projects/clf/model-versions/{head.pk}/card/").json()["head"] == head.pk

    paths = []
    for name, data in new_images():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "classifier.pt2"), str(tmp_path / "card.json"), *paths],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    outside = json.loads(run.stdout)
    assert outside["veil_loaded"] is False

    files = [SimpleUploadedFile(name, data) for name, data in new_images()]
    inside = api(admin).post("/api/projects/clf/predict/", {"files": files}, format="multipart").json()
    for row, proba in zip(inside["predictions"], outside["proba"], strict=True):
        assert dict(zip(outside["classes"], proba, strict=True)) == pytest.approx(row["probabilities"], abs=1e-4)
