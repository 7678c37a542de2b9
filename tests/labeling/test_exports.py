"""Exports, loaded back with the library that reads each format."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from labeling.models import Image, Job
from labeling.services.adjudication import adjudicate
from labeling.services.ingest import import_job_create, import_job_run
from labeling.services.projects import membership_set
from labeling.services.queue import annotation_submit, queue_next
from labeling.services.rounds import round_start_initial
from tests import imagefiles as f

pytestmark = pytest.mark.django_db

META_KEYS = {
    "image_id",
    "category",
    "source",
    "resolution",
    "file_size",
    "file_size_bytes",
    "date_collected",
    "verified",
    "quality_score",
}


@pytest.fixture
def labeled(project, admin_user, make_user, tmp_path):
    """12 images: 10 labeled by two moderators (one disagreement, adjudicated), 2 unlabeled."""
    project.overlap, project.batch_size, project.eval_fraction, project.gold_rate = 2, 12, 0.0, 0.0
    project.save()
    for seed in range(12):
        (tmp_path / f"{seed:02d}.jpg").write_bytes(f.jpeg_bytes(seed))
    import_job_run(job_id=import_job_create(project=project, paths=[str(tmp_path)], source="vendor").pk)
    round_start_initial(project=project)
    mods = []
    for name in ("m1", "m2"):
        user = make_user(name)
        membership_set(project=project, user=user, role="moderator")
        mods.append(user)
    truth = {}
    for user in mods:
        for _ in range(10):
            lease = queue_next(user=user, project=project)
            key = "violence" if lease.item.image_id % 2 else "neutral"
            truth[lease.item.image_id] = key
            annotation_submit(user=user, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=key)
    # One disagreement: m2 changes its label on the first image it labeled.
    first = Image.objects.filter(annotations__user=mods[1]).order_by("annotations__pk").first()
    from labeling.models import Annotation

    Annotation.objects.filter(user=mods[1], image=first).update(category=project.categories.get(key="drugs"))
    adjudicate(actor=admin_user, image=first, category_key="weapons", reason="a knife is visible")
    labeled_ids = set(Image.objects.filter(annotations__kind="label").values_list("pk", flat=True))
    return {"truth": truth, "adjudicated": first.pk, "labeled": labeled_ids}


def run_export(api, admin_user, project, fmt, django_capture_on_commit_callbacks, **filters):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(admin_user).post(
            reverse("api-exports", args=[project.slug]), {"format": fmt, **filters}, format="json"
        )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "succeeded", job.error
    download = api(admin_user).get(reverse("api-export-download", args=[job.pk]))
    assert download.status_code == 200
    return b"".join(download.streaming_content)


def test_jsonl_has_seed_metadata_final_label_source_and_agreement(
    api, project, admin_user, labeled, django_capture_on_commit_callbacks
):
    captioned = min(labeled["labeled"])
    Image.objects.filter(pk=captioned).update(ocr_text="NOT A DRILL")
    body = run_export(api, admin_user, project, "jsonl", django_capture_on_commit_callbacks)
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert {r["image_id"] for r in rows} == labeled["labeled"]
    assert {r["image_id"]: r["text"] for r in rows if r["text"]} == {captioned: "NOT A DRILL"}
    for row in rows:
        assert META_KEYS <= set(row)
        assert row["category"] == row["label"]
        if row["image_id"] == labeled["adjudicated"]:
            assert (row["label"], row["label_source"], row["agreement"]) == ("weapons", "adjudicated", 0.5)
        else:
            assert row["label_source"] == "consensus" and row["agreement"] == 1.0
            assert row["label"] == labeled["truth"][row["image_id"]]
        assert row["annotators"] == 2 and row["verified"] is True and row["source"] == "vendor"


def test_filters(api, project, admin_user, labeled, django_capture_on_commit_callbacks):
    body = run_export(
        api,
        admin_user,
        project,
        "jsonl",
        django_capture_on_commit_callbacks,
        categories=["violence"],
        min_agreement=1.0,
    )
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert rows and all(r["label"] == "violence" and r["agreement"] == 1.0 for r in rows)
    body = run_export(api, admin_user, project, "jsonl", django_capture_on_commit_callbacks, sources=["adjudicated"])
    assert [json.loads(line)["image_id"] for line in body.decode().splitlines()] == [labeled["adjudicated"]]
    bad = api(admin_user).post(
        reverse("api-exports", args=[project.slug]), {"format": "jsonl", "categories": ["unicorns"]}, format="json"
    )
    assert bad.status_code == 400 and "unicorns" in bad.json()["message"]
    bad = api(admin_user).post(reverse("api-exports", args=[project.slug]), {"format": "tar"}, format="json")
    assert bad.status_code == 400 and "format" in bad.json()["message"]


def test_csv_has_the_same_columns(api, project, admin_user, labeled, django_capture_on_commit_callbacks):
    body = run_export(api, admin_user, project, "csv", django_capture_on_commit_callbacks)
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == len(labeled["labeled"])
    assert META_KEYS | {"label", "label_source", "agreement", "annotators"} <= set(rows[0])


def test_imagefolder_zip_loads_with_torchvision(
    api, project, admin_user, labeled, tmp_path, django_capture_on_commit_callbacks
):
    from torchvision.datasets import ImageFolder

    body = run_export(api, admin_user, project, "imagefolder", django_capture_on_commit_callbacks)
    zipfile.ZipFile(io.BytesIO(body)).extractall(tmp_path / "out")
    dataset = ImageFolder(tmp_path / "out")
    assert len(dataset) == len(labeled["labeled"])
    assert set(dataset.classes) == {"violence", "neutral", "weapons"}
    image, target = dataset[0]
    assert image.size == (320, 240)


def test_huggingface_imagefolder_loads_with_datasets(
    api, project, admin_user, labeled, tmp_path, django_capture_on_commit_callbacks
):
    import datasets

    body = run_export(api, admin_user, project, "huggingface", django_capture_on_commit_callbacks)
    zipfile.ZipFile(io.BytesIO(body)).extractall(tmp_path / "hf")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    train = loaded["train"]
    assert len(train) == len(labeled["labeled"])
    row = next(r for r in train if r["image_id"] == labeled["adjudicated"])
    assert row["label"] == "weapons" and row["label_source"] == "adjudicated"
    assert row["image"].size == (320, 240)


def test_label_studio_json_validates_against_its_labeling_config(
    api, project, admin_user, labeled, django_capture_on_commit_callbacks
):
    from label_studio_sdk.label_interface import LabelInterface

    from labeling.services.exports import labelstudio_config

    body = run_export(api, admin_user, project, "labelstudio", django_capture_on_commit_callbacks)
    tasks = json.loads(body)
    interface = LabelInterface(labelstudio_config(project))
    assert len(tasks) == len(labeled["labeled"])
    for task in tasks:
        assert task["data"]["image"]
        for annotation in task["annotations"]:
            assert interface.validate_annotation(annotation), annotation
    bad = {"result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["x"]}}]}
    assert not interface.validate_annotation(bad), "the validator does reject unknown choices"


def test_direct_streaming_of_small_exports(api, project, admin_user, moderator, labeled):
    url = reverse("api-export-stream", args=[project.slug])
    response = api(admin_user).get(url, {"format": "jsonl", "categories": "neutral"})
    assert response.status_code == 200 and response.streaming
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert rows and {r["label"] for r in rows} == {"neutral"}
    assert api(moderator).get(url, {"format": "jsonl"}).status_code == 403
    archive = api(admin_user).get(url, {"format": "imagefolder"})
    assert archive.status_code == 400 and "job" in archive.json()["message"]


def test_export_files_are_private(
    api, project, admin_user, moderator, outsider, labeled, django_capture_on_commit_callbacks
):
    run_export(api, admin_user, project, "jsonl", django_capture_on_commit_callbacks)
    job = Job.objects.get(kind="export")
    assert default_storage.exists(job.result["file"])
    url = reverse("api-export-download", args=[job.pk])
    assert api(moderator).get(url).status_code == 404
    assert api(outsider).get(url).status_code == 404
    assert api().get(url).status_code in (401, 403)


def test_open_flags_are_a_column_in_every_format(api, project, admin_user, labeled, django_capture_on_commit_callbacks):
    from labeling.models import Annotation, Assignment
    from labeling.services.flags import flag_resolve

    flagged_id, dismissed_id = sorted(labeled["labeled"])[1:3]
    for n, (image_id, note) in enumerate(
        [(flagged_id, "Toy gun?"), (flagged_id, ""), (flagged_id, "Second look, please"), (dismissed_id, "Blood?")]
    ):
        lease = Assignment.objects.filter(item__image_id=image_id).order_by("pk").first()
        annotation_submit(user=lease.user, item_id=lease.item_id, client_key=f"flag-{n}", kind="flag", note=note)
    assert Annotation.objects.filter(kind="flag").count() == 4
    flag_resolve(actor=admin_user, image=Image.objects.get(pk=dismissed_id), action="dismiss", note="Paint.")

    rows = [
        json.loads(line)
        for line in run_export(api, admin_user, project, "jsonl", django_capture_on_commit_callbacks)
        .decode()
        .splitlines()
    ]
    by_id = {row["image_id"]: row for row in rows}
    assert (by_id[flagged_id]["flagged"], by_id[flagged_id]["flag_notes"]) == (True, "Toy gun?\nSecond look, please")
    assert (by_id[dismissed_id]["flagged"], by_id[dismissed_id]["flag_notes"]) == (False, ""), (
        "a dismissed flag is closed"
    )
    assert [r["image_id"] for r in rows if r["flagged"]] == [flagged_id]

    body = run_export(api, admin_user, project, "csv", django_capture_on_commit_callbacks).decode()
    csv_rows = {int(r["image_id"]): r for r in csv.DictReader(io.StringIO(body))}
    assert (csv_rows[flagged_id]["flagged"], csv_rows[flagged_id]["flag_notes"]) == (
        "True",
        "Toy gun?\nSecond look, please",
    )
    assert csv_rows[dismissed_id]["flagged"] == "False"

    tasks = json.loads(run_export(api, admin_user, project, "labelstudio", django_capture_on_commit_callbacks))
    assert [t["id"] for t in tasks if t["meta"]["flagged"]] == [flagged_id]

    archive = zipfile.ZipFile(
        io.BytesIO(run_export(api, admin_user, project, "huggingface", django_capture_on_commit_callbacks))
    )
    metadata = [json.loads(line) for line in archive.read("train/metadata.jsonl").decode().splitlines()]
    assert [m["image_id"] for m in metadata if m["flagged"]] == [flagged_id]
    folder = zipfile.ZipFile(
        io.BytesIO(run_export(api, admin_user, project, "imagefolder", django_capture_on_commit_callbacks))
    )
    assert len(folder.namelist()) == len(labeled["labeled"]), "the ImageFolder layout is unchanged"
