"""Bad input to the API: malformed uploads, filters and JSON bodies get a 4xx answer
whose message names the field or the file, and nothing stored changes.

Every request runs in a savepoint that is rolled back, against the access tests' world
(a project with imported images, round 0 under way, a finished export).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from tests import imagefiles as f
from tests.labeling.test_access import World, build_world, stored_state

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(project, admin_user, moderator, outsider, tmp_path) -> World:
    admin_user.is_staff = True  # may create projects
    admin_user.save(update_fields=["is_staff"])
    return build_world(
        project=project, admin_user=admin_user, moderator=moderator, outsider=outsider, folder=tmp_path / "incoming"
    )


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass(frozen=True)
class Bad:
    """A request that must be refused with ``status``, naming every word of ``names``."""

    what: str
    method: str
    route: str
    data: object
    names: tuple[str, ...]
    status: int = 400
    body: str = "json"
    role: str = "admin"


def url_of(world: World, case: Bad) -> str:
    arg = {
        "slug": world.project.slug,
        "image": world.image.pk,
        "item": world.items[case.role],
        "reveal": world.reveals[case.role],
        "none": None,
    }
    kind, _, name = case.route.partition(":")
    return reverse(name, args=[] if kind == "none" else [arg[kind]])


def send(client: APIClient, case: Bad, url: str):
    data = case.data() if callable(case.data) else case.data
    if case.method == "GET":
        return client.get(url, data)
    if case.body == "raw":
        return client.generic("POST", url, data, content_type="application/json")
    return client.post(url, data, format=case.body)


def refused(world: World, cases: list[Bad]) -> list[str]:
    """Send every case; describe each one that was not refused as it should be."""
    problems = []
    for case in cases:
        url = url_of(world, case)
        with transaction.atomic():
            client = APIClient()
            client.force_authenticate(world.users[case.role])
            before = stored_state()
            response = send(client, case, url)
            after = stored_state()
            transaction.set_rollback(True)
        where = f"{case.what}: {case.method} {url}"
        if response.status_code != case.status:
            problems.append(f"{where}: expected {case.status}, got {response.status_code}: {response.content[:300]!r}")
            continue
        body = json.loads(response.content)
        if set(body) != {"message", "code", "extra"}:
            problems.append(f"{where}: the body is not {{message, code, extra}}: {body}")
            continue
        missing = [word for word in case.names if word not in body["message"]]
        if missing:
            problems.append(f"{where}: the message does not name {missing}: {body['message']!r}")
        if before != after:
            problems.append(f"{where}: refused, yet changed {sorted(k for k in before if before[k] != after[k])}")
    return problems


def uploads(*files: tuple[str, bytes], **fields) -> callable:
    return lambda: {"files": [SimpleUploadedFile(name, data) for name, data in files], **fields}


GOOD = ("good.jpg", f.jpeg_bytes(70))
LONG_NAME = "a" * 251 + ".jpg"
WIDE_NAME = "é" * 150 + ".jpg"  # 154 characters, 304 bytes

UPLOADS = [
    Bad("no files at all", "POST", "slug:api-project-upload", {}, ("files",), body="multipart"),
    Bad("files as a text field", "POST", "slug:api-project-upload", {"files": "a.jpg"}, ("files",), body="multipart"),
    Bad(
        "an empty file",
        "POST",
        "slug:api-project-upload",
        uploads(("empty.jpg", f.empty_file())),
        ("files", "empty.jpg", "empty"),
        body="multipart",
    ),
    Bad(
        "a text file",
        "POST",
        "slug:api-project-upload",
        uploads(("notes.txt", b"meeting notes\n" * 99)),
        ("files", "notes.txt", "neither an image"),
        body="multipart",
    ),
    Bad(
        "a zip with a ../ entry",
        "POST",
        "slug:api-project-upload",
        uploads(("batch.zip", zipped({"ok/a.jpg": f.jpeg_bytes(71), "../escape.jpg": f.jpeg_bytes(72)}))),
        ("batch.zip", "../escape.jpg", "leaves the archive"),
        body="multipart",
    ),
    Bad(
        "a zip with an absolute entry",
        "POST",
        "slug:api-project-upload",
        uploads(("abs.zip", zipped({"/etc/cron.d/x.jpg": f.jpeg_bytes(73)}))),
        ("abs.zip", "/etc/cron.d/x.jpg", "absolute path"),
        body="multipart",
    ),
    Bad(
        "a corrupt zip",
        "POST",
        "slug:api-project-upload",
        uploads(("broken.zip", b"PK\x03\x04" + b"\x00" * 500)),
        ("broken.zip", "not a readable zip archive"),
        body="multipart",
    ),
    Bad(
        "a truncated zip",
        "POST",
        "slug:api-project-upload",
        uploads(("half.zip", zipped({"a.jpg": f.jpeg_bytes(74), "b.jpg": f.jpeg_bytes(75)})[:9000])),
        ("half.zip", "not a readable zip archive"),
        body="multipart",
    ),
    Bad(
        "a file name of 255 characters",
        "POST",
        "slug:api-project-upload",
        uploads((LONG_NAME, f.jpeg_bytes(76))),
        (LONG_NAME[:40], "longer than"),
        body="multipart",
    ),
    Bad(
        "a file name of 304 bytes",
        "POST",
        "slug:api-project-upload",
        uploads((WIDE_NAME, f.jpeg_bytes(77))),
        (WIDE_NAME[:40], "longer than"),
        body="multipart",
    ),
    Bad(
        "labels_from_folders not a boolean",
        "POST",
        "slug:api-project-upload",
        uploads(GOOD, labels_from_folders="maybe"),
        ("labels_from_folders",),
        body="multipart",
    ),
    Bad(
        "source too long",
        "POST",
        "slug:api-project-upload",
        uploads(GOOD, source="s" * 201),
        ("source",),
        body="multipart",
    ),
]


def test_malformed_uploads_are_refused_naming_the_file(world):
    problems = refused(world, UPLOADS)
    assert not problems, "\n".join(problems)


def test_a_picture_the_import_rejects_is_still_a_valid_upload(world):
    """Problems of the picture itself (corrupt, too small...) are the import's to record."""
    client = APIClient()
    client.force_authenticate(world.users["admin"])
    response = client.post(
        reverse("api-project-upload", args=[world.project.slug]),
        {"files": [SimpleUploadedFile("cut.jpg", f.truncated_jpeg(77)), SimpleUploadedFile("dot.png", f.png_1x1())]},
        format="multipart",
    )
    assert response.status_code == 202, response.content


STREAM = "slug:api-export-stream"
FILTERS = [
    Bad("min_agreement=abc", "GET", STREAM, {"format": "jsonl", "min_agreement": "abc"}, ("min_agreement",)),
    Bad("min_agreement=2", "GET", STREAM, {"format": "jsonl", "min_agreement": "2"}, ("min_agreement",)),
    Bad("min_agreement=nan", "GET", STREAM, {"format": "jsonl", "min_agreement": "nan"}, ("min_agreement",)),
    Bad("date_from=notadate", "GET", STREAM, {"format": "jsonl", "date_from": "notadate"}, ("date_from",)),
    Bad(
        "date_to out of range", "GET", STREAM, {"format": "jsonl", "date_to": "0001-01-01T00:00:00+14:00"}, ("date_to",)
    ),
    Bad("format=xml", "GET", STREAM, {"format": "xml"}, ("format", "xml")),
    Bad("no format", "GET", STREAM, {}, ("format",)),
    Bad("an archive format", "GET", STREAM, {"format": "imagefolder"}, ("imagefolder", "export job")),
    Bad("round=-1", "GET", STREAM, {"format": "jsonl", "round": "-1"}, ("round",)),
    Bad("round beyond any integer column", "GET", STREAM, {"format": "jsonl", "round": str(2**63)}, ("round",)),
    Bad("split=bogus", "GET", STREAM, {"format": "jsonl", "split": "bogus"}, ("split",)),
    Bad("unknown category", "GET", STREAM, {"format": "jsonl", "categories": "kittens"}, ("categories", "kittens")),
    Bad("unknown label source", "GET", STREAM, {"format": "jsonl", "sources": "gossip"}, ("sources", "gossip")),
    Bad("report limit=abc", "GET", "slug:api-disagreements", {"limit": "abc"}, ("limit", "abc")),
    Bad("report limit=0", "GET", "slug:api-disagreements", {"limit": "0"}, ("limit",)),
    Bad("report limit huge", "GET", "slug:api-disagreements", {"limit": str(10**30)}, ("limit",)),
    Bad("report limit of 5000 digits", "GET", "slug:api-disagreements", {"limit": "9" * 5000}, ("limit",)),
    Bad("report format=xml", "GET", "slug:api-disagreements", {"format": "xml"}, ("format", "xml")),
    Bad("threshold=abc", "GET", "slug:api-model-disagreements", {"threshold": "abc"}, ("threshold",)),
    Bad("threshold=2", "GET", "slug:api-model-disagreements", {"threshold": "2"}, ("threshold",)),
    Bad("threshold=nan", "GET", "slug:api-model-disagreements", {"threshold": "nan"}, ("threshold",)),
    Bad("images status=bogus", "GET", "slug:api-project-images", {"status": "bogus"}, ("status", "bogus")),
    Bad("images split=bogus", "GET", "slug:api-project-images", {"split": "bogus"}, ("split",)),
    Bad("jobs kind=bogus", "GET", "slug:api-project-jobs", {"kind": "bogus"}, ("kind",)),
    Bad("annotations round=abc", "GET", "slug:api-annotations", {"round": "abc"}, ("round",)),
    Bad("annotations round=1.5", "GET", "slug:api-annotations", {"round": "1.5"}, ("round",)),
    Bad("annotations image=abc", "GET", "slug:api-annotations", {"image": "abc"}, ("image",)),
    Bad("annotations kind=bogus", "GET", "slug:api-annotations", {"kind": "bogus"}, ("kind",)),
    Bad("created_after=notadate", "GET", "slug:api-annotations", {"created_after": "notadate"}, ("created_after",)),
    Bad(
        "created_after before year 1 in UTC",
        "GET",
        "slug:api-annotations",
        {"created_after": "0001-01-01T00:00:00+14:00"},
        ("created_after",),
    ),
    Bad("images cursor=abc", "GET", "slug:api-project-images", {"cursor": "abc"}, ("cursor", "abc")),
    Bad("images label=kittens", "GET", "slug:api-project-images", {"label": "kittens"}, ("label", "kittens")),
    Bad("images sort=sideways", "GET", "slug:api-project-images", {"sort": "sideways"}, ("sort", "sideways")),
    Bad("annotations page=0", "GET", "slug:api-annotations", {"page": "0"}, ("page",)),
    Bad("images limit=0", "GET", "slug:api-project-images", {"limit": "0"}, ("limit",)),
    Bad("model versions is_active=maybe", "GET", "slug:api-model-versions", {"is_active": "maybe"}, ("is_active",)),
    Bad(
        "export job: categories not a list",
        "POST",
        "slug:api-exports",
        {"format": "jsonl", "categories": "violence"},
        ("categories",),
    ),
    Bad("export job: unknown format", "POST", "slug:api-exports", {"format": "parquet"}, ("format", "parquet")),
    Bad("export job: format a number", "POST", "slug:api-exports", {"format": 5}, ("format",)),
    Bad(
        "export job: date_from=notadate",
        "POST",
        "slug:api-exports",
        {"format": "csv", "date_from": "notadate"},
        ("date_from",),
    ),
    Bad("export job: round a string", "POST", "slug:api-exports", {"format": "csv", "round": "first"}, ("round",)),
]


def test_bad_filters_are_refused_naming_the_field(world):
    problems = refused(world, FILTERS)
    assert not problems, "\n".join(problems)


def test_well_formed_filters_pass(world):
    """The same endpoints answer 200 to the values the bad cases spoil."""
    client = APIClient()
    client.force_authenticate(world.users["admin"])
    slug = world.project.slug
    for name, params in (
        (
            "api-export-stream",
            {
                "format": "jsonl",
                "min_agreement": "0.5",
                "date_from": "2020-01-01",
                "round": "0",
                "split": "pool",
                "categories": "violence",
                "sources": "consensus",
            },
        ),
        ("api-disagreements", {"limit": "10", "format": "csv"}),
        ("api-model-disagreements", {"threshold": "0.5"}),
        ("api-annotations", {"round": "0", "image": str(world.image.pk), "created_after": "2020-01-01T00:00:00Z"}),
        # Offsets past 15:59 are ISO 8601 to Python but not to PostgreSQL: they are converted to UTC first.
        ("api-annotations", {"created_before": "8496-11-13T07:32:56+16:23"}),
        ("api-export-stream", {"format": "csv", "date_to": "8496-11-13T07:32:56+16:23"}),
        ("api-model-versions", {"is_active": "true"}),
        ("api-project-images", {"cursor": "1"}),
        ("api-project-images", {"limit": "200", "sort": "-id"}),
    ):
        response = client.get(reverse(name, args=[slug]), params)
        assert response.status_code == 200, (name, response.content[:300])
        if response.streaming:
            b"".join(response.streaming_content)
    versions = client.get(reverse("api-model-versions", args=[slug]), {"is_active": "false"}).json()
    assert versions["count"] == 0


SUBMIT = "item:api-queue-submit"
WRITES = [
    Bad(
        "submit: unknown category", "POST", SUBMIT, {"client_key": "k1", "category": "kittens"}, ("category", "kittens")
    ),
    Bad("submit: a label without a category", "POST", SUBMIT, {"client_key": "k2"}, ("category",)),
    Bad(
        "submit: category an object", "POST", SUBMIT, {"client_key": "k3", "category": {"key": "drugs"}}, ("category",)
    ),
    Bad("submit: unknown kind", "POST", SUBMIT, {"client_key": "k4", "kind": "delete"}, ("kind",)),
    Bad(
        "submit: time_spent_ms a word",
        "POST",
        SUBMIT,
        {"client_key": "k5", "category": "drugs", "time_spent_ms": "long"},
        ("time_spent_ms",),
    ),
    Bad(
        "submit: time_spent_ms negative",
        "POST",
        SUBMIT,
        {"client_key": "k6", "category": "drugs", "time_spent_ms": -5},
        ("time_spent_ms",),
    ),
    Bad(
        "submit: revealed not a boolean",
        "POST",
        SUBMIT,
        {"client_key": "k7", "category": "drugs", "revealed": "maybe"},
        ("revealed",),
    ),
    Bad("submit: client_key too long", "POST", SUBMIT, {"client_key": "k" * 65, "category": "drugs"}, ("client_key",)),
    Bad("submit: no client_key", "POST", SUBMIT, {"category": "drugs"}, ("client_key",)),
    Bad("submit: a list, not an object", "POST", SUBMIT, ["k8", "drugs"], ("dictionary",)),
    Bad("submit: malformed JSON", "POST", SUBMIT, '{"client_key": "k9",', ("JSON",), body="raw"),
    Bad(
        "submit as moderator: unknown category",
        "POST",
        SUBMIT,
        {"client_key": "k10", "category": "kittens"},
        ("category",),
        role="moderator",
    ),
    Bad(
        "undo: client_key a list",
        "POST",
        "slug:api-queue-undo",
        {"client_key": ["a"]},
        ("client_key",),
        role="moderator",
    ),
    Bad(
        "reveal finish: duration a word",
        "POST",
        "reveal:api-reveal-finish",
        {"duration_ms": "long"},
        ("duration_ms",),
        role="moderator",
    ),
    Bad(
        "reveal finish: negative duration",
        "POST",
        "reveal:api-reveal-finish",
        {"duration_ms": -1},
        ("duration_ms",),
        role="moderator",
    ),
    Bad("reveal budget: negative", "POST", "slug:api-reveal-budget", {"username": "mod", "budget": -1}, ("budget",)),
    Bad(
        "reveal budget: beyond an integer column",
        "POST",
        "slug:api-reveal-budget",
        {"username": "mod", "budget": 2**31},
        ("budget",),
    ),
    Bad("reveal budget: huge", "POST", "slug:api-reveal-budget", {"username": "mod", "budget": 10**30}, ("budget",)),
    Bad("reveal budget: no username", "POST", "slug:api-reveal-budget", {"budget": 3}, ("username",)),
    Bad("pretrain: minutes=0", "POST", "slug:api-pretrain", {"minutes": 0}, ("minutes",)),
    Bad("pretrain: minutes a word", "POST", "slug:api-pretrain", {"minutes": "soon"}, ("minutes",)),
    Bad("pretrain: a year of minutes", "POST", "slug:api-pretrain", {"minutes": 525_600}, ("minutes",)),
    Bad("pretrain: unknown config", "POST", "slug:api-pretrain", {"config": "huge", "minutes": 1}, ("config",)),
    Bad("pretrain: no budget", "POST", "slug:api-pretrain", {}, ("minutes",)),
    Bad("category: a key with spaces", "POST", "slug:api-categories", {"key": "Bad Key!"}, ("key",)),
    Bad("category: a two-letter hotkey", "POST", "slug:api-categories", {"key": "spam", "hotkey": "12"}, ("hotkey",)),
    Bad("category: a hotkey in use", "POST", "slug:api-categories", {"key": "spam", "hotkey": "1"}, ("hotkey",)),
    Bad("category: a key in use", "POST", "slug:api-categories", {"key": "violence"}, ("violence",)),
    Bad(
        "adjudication: unknown category",
        "POST",
        "image:api-adjudications",
        {"category": "kittens", "reason": "because"},
        ("category", "kittens"),
    ),
    Bad(
        "adjudication: a blank reason",
        "POST",
        "image:api-adjudications",
        {"category": "drugs", "reason": " "},
        ("reason",),
    ),
    Bad("flag resolution: no action", "POST", "image:api-flag-resolutions", {"note": "why"}, ("action",)),
    Bad("flag resolution: unknown action", "POST", "image:api-flag-resolutions", {"action": "escalate"}, ("action",)),
    Bad(
        "flag resolution: relabel without a note",
        "POST",
        "image:api-flag-resolutions",
        {"action": "relabel", "category": "drugs"},
        ("note",),
    ),
    Bad(
        "flag resolution: relabel to an unknown category",
        "POST",
        "image:api-flag-resolutions",
        {"action": "relabel", "category": "kittens", "note": "why"},
        ("category", "kittens"),
    ),
    Bad(
        "flag resolution: a guideline change without its text",
        "POST",
        "image:api-flag-resolutions",
        {"action": "guideline", "category": "drugs"},
        ("guideline",),
    ),
    Bad("gold: unknown category", "POST", "image:api-gold", {"category": "kittens"}, ("category", "kittens")),
    Bad("gold: category a list", "POST", "image:api-gold", {"category": ["drugs"]}, ("category",)),
    Bad("project: a slug with spaces", "POST", "none:api-projects", {"slug": "my project"}, ("slug",)),
    Bad("project: overlap 0", "POST", "none:api-projects", {"slug": "fresh", "overlap": 0}, ("overlap",)),
    Bad(
        "project: batch size beyond any integer",
        "POST",
        "none:api-projects",
        {"slug": "fresh", "batch_size": 10**30},
        ("batch_size",),
    ),
    Bad(
        "project: unknown quality setting",
        "POST",
        "none:api-projects",
        {"slug": "fresh", "quality": {"min_widht": 3}},
        ("min_widht",),
    ),
    Bad(
        "project: categories not a list",
        "POST",
        "none:api-projects",
        {"slug": "fresh", "categories": "hat"},
        ("categories",),
    ),
]


def test_bad_writes_are_refused_naming_the_field(world):
    problems = refused(world, WRITES)
    assert not problems, "\n".join(problems)


def test_wrong_content_type_is_refused(world):
    client = APIClient()
    client.force_authenticate(world.users["moderator"])
    url = reverse("api-queue-submit", args=[world.items["moderator"]])
    response = client.generic("POST", url, "client_key=k&category=drugs", content_type="text/plain")
    assert response.status_code == 415
    assert "text/plain" in response.json()["message"]
