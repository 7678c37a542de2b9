"""Server-rendered pages: sign-in, the project list, the project page and its upload form."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.views.defaults import permission_denied, server_error

from labeling.models import Job
from tests import imagefiles as f

pytestmark = pytest.mark.django_db


def test_pages_need_sign_in(client, project):
    for url in (reverse("project-list"), reverse("project-detail", args=[project.slug])):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]


def test_project_page_shows_summary_balance_and_jobs(client, project, admin_user, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("project-upload", args=[project.slug]),
            {
                "files": [
                    SimpleUploadedFile("violence/a.jpg", f.jpeg_bytes(1)),
                    SimpleUploadedFile("b.jpg", f.truncated_jpeg()),
                ],
                "source": "vendor",
            },
        )
    assert response.status_code == 302
    job = Job.objects.get(kind="import")
    assert job.status == "succeeded"
    embeds = Job.objects.filter(kind="embed")
    assert sorted(embeds.values_list("params__model", "status")) == [
        ("efficientnet-lite0", "succeeded"),
        ("minilm-l6", "succeeded"),
    ]

    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert 'data-outcome="accepted">1<' in page
    assert 'data-outcome="corrupt">1<' in page
    assert f'data-job-id="{job.pk}"' in page and 'id="upload"' in page
    assert all(f'data-job-id="{embed.pk}"' in page for embed in embeds)
    assert "Imbalance ratio" in page
    assert "/blurred/" in page and "/original/" not in page


def test_moderators_see_no_upload_form_and_cannot_post(client, project, moderator):
    client.force_login(moderator)
    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert 'id="upload"' not in page
    response = client.post(
        reverse("project-upload", args=[project.slug]),
        {"files": [SimpleUploadedFile("a.jpg", f.jpeg_bytes(1))]},
        follow=True,
    )
    assert "Only admins" in response.content.decode()
    assert not Job.objects.exists()


def test_outsider_gets_404(client, project, outsider):
    client.force_login(outsider)
    assert client.get(reverse("project-detail", args=[project.slug])).status_code == 404


def test_project_list_shows_each_projects_own_taxonomy(client, project, admin_user):
    from labeling.services.projects import membership_set, project_create

    clothes = project_create(slug="clothes", taxonomy=[{"key": "hat"}, {"key": "shoes"}])
    membership_set(project=clothes, user=admin_user, role="moderator")
    client.force_login(admin_user)
    page = client.get(reverse("project-list")).content.decode()
    assert "Hateful memes" in page and "Hat" in page and "Shoes" in page


def test_page_upload_refuses_files_it_cannot_import_by_name(client, project, admin_user, media_root):
    client.force_login(admin_user)
    response = client.post(
        reverse("project-upload", args=[project.slug]),
        {
            "files": [
                SimpleUploadedFile("notes.txt", b"just text, no picture here"),
                SimpleUploadedFile("x" * 230 + ".jpg", f.jpeg_bytes(1)),
            ],
        },
        follow=True,
    )
    text = response.content.decode()
    assert "notes.txt is neither an image" in text and "file name is longer" in text
    assert not Job.objects.exists()
    assert not any(p.is_file() for p in media_root.rglob("*")), "nothing stored"


def test_header_links_the_api_docs_for_admins_only(client, project, admin_user, moderator):
    docs = f'href="{reverse("api-docs")}"'
    client.force_login(moderator)
    assert docs not in client.get(reverse("project-list")).content.decode()
    client.force_login(admin_user)
    assert docs in client.get(reverse("project-list")).content.decode()


def test_api_docs_load_swagger_ui_from_local_static_files_only(client, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("api-docs")).content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets), assets
    assert all(url.startswith(settings.STATIC_URL) or url.startswith("/") for url in assets), assets
    assert not re.search(r"https?://", page), "the docs page names no other host"


def test_missing_pages_use_veils_own_404(client, moderator):
    client.force_login(moderator)
    response = client.get("/projects/no-such-project/")
    page = response.content.decode()
    assert response.status_code == 404
    assert 'data-status="404"' in page and "Page not found" in page and 'class="brand"' in page
    assert "URLconf" not in page


def test_refusals_and_server_errors_use_veils_own_pages(rf, client, moderator):
    forbidden = permission_denied(rf.get("/"), PermissionDenied())
    assert forbidden.status_code == 403 and b'data-status="403"' in forbidden.content
    # The 500 page renders with no request context at all: no user, no messages.
    broken = server_error(rf.get("/"))
    assert broken.status_code == 500 and b'data-status="500"' in broken.content
    assert b"Something went wrong" in broken.content

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(moderator)
    expired = strict.post(reverse("logout"))
    assert expired.status_code == 403 and b"This form has expired" in expired.content


def test_page_upload_imports_the_good_files_and_names_the_bad_one(
    client, project, admin_user, media_root, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("project-upload", args=[project.slug]),
            {"files": [SimpleUploadedFile("good.jpg", f.jpeg_bytes(1)), SimpleUploadedFile("notes.txt", b"text")]},
            follow=True,
        )
    text = response.content.decode()
    assert "queued with 1 file(s)" in text and "Not imported: notes.txt is neither an image" in text
    job = Job.objects.get(kind="import")
    assert job.counts["accepted"] == 1 and job.counts["unsupported"] == 1
