"""The REST API of the foundation: projects, uploads, jobs, images, reports, access."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from labeling.models import Image, Job, Reveal
from tests import imagefiles as f

pytestmark = pytest.mark.django_db


def upload(client, slug, files, **data):
    return client.post(
        reverse("api-project-upload", args=[slug]),
        {"files": [SimpleUploadedFile(name, content) for name, content in files.items()], **data},
        format="multipart",
    )


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_upload_images_and_a_zip_runs_an_import_job(api, project, admin_user, django_capture_on_commit_callbacks):
    client = api(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            client,
            project.slug,
            {
                "one.jpg": f.jpeg_bytes(1),
                "batch.zip": zipped({"violence/two.jpg": f.jpeg_bytes(2), "bad.jpg": f.truncated_jpeg()}),
            },
            source="vendor",
            labels_from_folders="true",
        )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == Job.Status.SUCCEEDED

    polled = client.get(reverse("api-job", args=[job.pk])).json()
    assert polled["status"] == "succeeded" and polled["progress"] == 1.0
    assert polled["counts"]["accepted"] == 2 and polled["counts"]["corrupt"] == 1
    assert Image.objects.get(name="violence/two.jpg").source_label.key == "violence"
    assert job.params["uploads"], "the uploads were kept for the job"
    assert not any(default_storage.exists(name) for name in job.params["uploads"]), "uploads removed after import"


def test_image_metadata_has_the_seed_record(api, project, admin_user, django_capture_on_commit_callbacks):
    client = api(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, project.slug, {"violence/a.jpg": f.jpeg_bytes(1)})
    Image.objects.filter(project=project).update(source_label=project.categories.get(key="violence"))
    page = client.get(reverse("api-project-images", args=[project.slug]), {"status": "accepted"}).json()
    assert page["count"] == 1
    meta = page["results"][0]["metadata"]
    assert set(meta) == {
        "image_id",
        "category",
        "source",
        "resolution",
        "file_size",
        "file_size_bytes",
        "date_collected",
        "verified",
        "label_source",
        "quality_score",
    }
    assert (meta["category"], meta["label_source"]) == ("violence", "import")
    assert meta["resolution"] == "320x240"
    assert meta["file_size_bytes"] == len(f.jpeg_bytes(1))
    assert meta["file_size"] == f"{round(len(f.jpeg_bytes(1)) / 1024)}KB"
    assert meta["verified"] is False
    detail = client.get(reverse("api-image", args=[meta["image_id"]])).json()
    assert detail["metadata"] == meta


def test_reports(api, project, admin_user, moderator, tmp_path):
    from labeling.services.ingest import import_job_create, import_job_run

    for i, key in enumerate(["violence", "violence", "violence", "drugs"]):
        (tmp_path / key).mkdir(exist_ok=True)
        (tmp_path / key / f"{i}.jpg").write_bytes(f.jpeg_bytes(i))
    (tmp_path / "junk.jpg").write_bytes(f.empty_file())
    import_job_run(job_id=import_job_create(project=project, paths=[str(tmp_path)], labels_from_folders=True).pk)

    balance = api(moderator).get(reverse("api-class-balance", args=[project.slug])).json()
    rows = {row["key"]: row for row in balance["categories"]}
    assert rows["violence"]["source_labels"] == 3 and rows["drugs"]["total"] == 1
    assert balance["imbalance_ratio"] == 3.0 and balance["labeled"] == 4 and balance["unlabeled"] == 0

    summary = api(moderator).get(reverse("api-import-summary", args=[project.slug])).json()
    assert summary["counts"]["accepted"] == 4 and summary["counts"]["too_small"] == 1
    assert summary["total"] == 5 and summary["jobs"][0]["status"] == "succeeded"


def test_one_bad_file_of_an_upload_is_refused_by_name_and_the_others_imported(
    api, project, admin_user, django_capture_on_commit_callbacks
):
    client = api(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            client,
            project.slug,
            {"one.jpg": f.jpeg_bytes(1), "photo.jpg": f.text_as_jpg(), "two.jpg": f.jpeg_bytes(2)},
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert [(r["name"], r["reason"]) for r in body["refused"]] == [("photo.jpg", "unsupported")]
    assert "photo.jpg is neither an image" in body["refused"][0]["detail"]
    assert sorted(Image.objects.filter(status="accepted").values_list("name", flat=True)) == ["one.jpg", "two.jpg"]
    job = Job.objects.get(pk=body["id"])
    assert job.counts["total"] == 3 and job.counts["accepted"] == 2 and job.counts["unsupported"] == 1
    assert len(job.params["uploads"]) == 2, "the refused file was never stored"
    summary = client.get(reverse("api-import-summary", args=[project.slug])).json()
    assert summary["counts"]["unsupported"] == 1 and summary["total"] == 3, summary

    # Every file refused: nothing to import, each named.
    response = upload(client, project.slug, {"a.txt": b"notes", "b.jpg": b""})
    assert response.status_code == 400
    assert "a.txt is neither an image" in response.json()["message"] and "b.jpg is empty" in response.json()["message"]


def test_upload_with_no_files_names_the_field(api, project, admin_user):
    response = api(admin_user).post(reverse("api-project-upload", args=[project.slug]), {}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "files" in body["message"]


def test_access(api, project, admin_user, moderator, outsider):
    urls = [
        reverse("api-project", args=[project.slug]),
        reverse("api-project-images", args=[project.slug]),
        reverse("api-class-balance", args=[project.slug]),
        reverse("api-import-summary", args=[project.slug]),
        reverse("api-project-jobs", args=[project.slug]),
    ]
    for url in urls:
        assert api().get(url).status_code in (401, 403), url
        assert api(outsider).get(url).status_code == 404, url
        assert api(moderator).get(url).status_code == 200, url
        assert api(admin_user).get(url).status_code == 200, url
    slugs = [p["slug"] for p in api(outsider).get(reverse("api-projects")).json()["results"]]
    assert slugs == []
    response = upload(api(moderator), project.slug, {"a.jpg": f.jpeg_bytes(1)})
    assert response.status_code == 403 and response.json()["code"] == "admin_only"


def test_project_create_with_own_taxonomy(api, make_user):
    staff = make_user("staff", is_staff=True)
    response = api(staff).post(
        reverse("api-projects"),
        {
            "slug": "clothes",
            "categories": [{"key": "hat"}, {"key": "shoes", "sensitive": True}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(c["key"], c["hotkey"]) for c in body["categories"]] == [("hat", "1"), ("shoes", "2")]
    again = api(staff).post(reverse("api-projects"), {"slug": "clothes"}, format="json")
    assert again.status_code == 400 and again.json()["code"] == "project_exists"
    bad = api(staff).post(reverse("api-projects"), {"slug": "q", "quality": {"min_widht": 3}}, format="json")
    assert bad.status_code == 400 and "min_widht" in bad.json()["message"]


def test_image_files_are_private_and_reveals_recorded(client, project, admin_user, moderator, outsider, tmp_path):
    from labeling.services.ingest import import_job_create, import_job_run

    (tmp_path / "a.jpg").write_bytes(f.jpeg_bytes(1))
    import_job_run(job_id=import_job_create(project=project, paths=[str(tmp_path)]).pk)
    image = Image.objects.get()
    blurred_url = reverse("image-file", args=[image.pk, "blurred"])
    original_url = reverse("image-file", args=[image.pk, "original"])

    assert client.get(blurred_url).status_code == 302  # to the sign-in page
    client.force_login(outsider)
    assert client.get(blurred_url).status_code == 404
    client.force_login(moderator)
    response = client.get(blurred_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) != f.jpeg_bytes(1)
    sketch = client.get(reverse("image-file", args=[image.pk, "sketch"]))
    assert sketch.status_code == 200 and sketch["Content-Type"] == "image/jpeg"
    from PIL import Image as PILImage

    drawing = PILImage.open(io.BytesIO(b"".join(sketch.streaming_content)))
    assert drawing.mode == "L" and max(drawing.size) <= 256, "a grey line drawing, made on first request"
    assert not Reveal.objects.exists()
    original = client.get(original_url)
    assert b"".join(original.streaming_content) == f.jpeg_bytes(1)
    assert original["Cache-Control"] == "private, no-store"
    assert Reveal.objects.get().user == moderator
