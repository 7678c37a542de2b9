"""Who reaches what: every API endpoint, page and image file, for an anonymous visitor, a
moderator of another project, a moderator and an admin of the project; CSRF on session
writes; and no public route to stored media.

The matrix is built from the URL resolver: a route without a row in ``EXPECTED`` (or a
row without a route) fails ``test_every_route_has_a_row``. Each request runs in a
savepoint that is rolled back, so no cell depends on another, and a refused request
must leave the stored state exactly as it found it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from rest_framework.authtoken.models import Token

from labeling.errors import ApplicationError, Forbidden, NotFound
from labeling.forms import ProjectSettingsForm
from labeling.models import (
    Adjudication,
    Annotation,
    Assignment,
    Category,
    FlagResolution,
    Image,
    Job,
    Membership,
    ModelVersion,
    Project,
    QueueItem,
    Reveal,
    Round,
)
from labeling.services import (
    adjudication,
    corrections,
    exports,
    flags,
    ingest,
    projects,
    queue,
    rounds,
    training,
    wellbeing,
)
from labeling.services.exports import export_job_create, export_run
from labeling.services.ingest import import_job_create, import_job_run
from labeling.services.jobs import job_create, job_succeed
from labeling.services.projects import membership_set, project_create
from labeling.services.queue import annotation_submit, queue_next
from labeling.services.rounds import retrain_fit
from labeling.services.wellbeing import reveal_record
from tests import imagefiles as f

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "outsider", "moderator", "admin")
MEMBERS = frozenset({"moderator", "admin"})
SIGNED_IN = frozenset({"outsider", "moderator", "admin"})
EVERYONE = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
ADMINS = frozenset({"admin"})


def incoming() -> dict[str, bytes]:
    """The files imported into the world: pre-labeled by folder, one without a folder, one broken."""
    return {
        "violence/v1.jpg": f.jpeg_bytes(1),
        "violence/v2.jpg": f.jpeg_bytes(2),
        "violence/v3.jpg": f.jpeg_bytes(3),
        "drugs/d1.jpg": f.jpeg_bytes(4),
        "drugs/d2.png": f.encode(f.photo(5), "PNG"),
        "neutral/n1.jpg": f.jpeg_bytes(6),
        "neutral/n2.jpg": f.jpeg_bytes(7),
        "unsorted.jpg": f.jpeg_bytes(8),
        "broken.jpg": f.truncated_jpeg(9),
    }


VARIANTS = ("blurred", "sketch", "original", "thumbnail")


# --- the world every URL points into -----------------------------------------------------------


@dataclass
class World:
    """A project with imported images, round 0 under way, a finished export, and a
    second project whose moderator is the outsider."""

    project: Project
    users: dict[str, object]
    image: Image
    import_job: Job
    export_job: Job
    items: dict[str, int]
    reveals: dict[str, int]
    head: ModelVersion
    annotation: Annotation

    def url_kwargs(self, route: str, params: tuple[str, ...], role: str, extra: dict) -> dict:
        values = {
            "slug": self.project.slug,
            "image_id": self.image.pk,
            "item_id": self.items[role],
            "reveal_id": self.reveals[role],
            "job_id": self.export_job.pk if route == "api-export-download" else self.import_job.pk,
            "pk": self.head.pk,
            "annotation_id": self.annotation.pk,
        }
        return {name: extra[name] if name in extra else values[name] for name in params}


def build_world(*, project, admin_user, moderator, outsider, folder: Path) -> World:
    project.gold_rate, project.ocr, project.weak_labels = 0.0, False, True
    project.save(update_fields=["gold_rate", "ocr", "weak_labels"])
    elsewhere = project_create(slug="elsewhere", name="Elsewhere")
    membership_set(project=elsewhere, user=outsider, role=Membership.Role.MODERATOR)

    for name, data in incoming().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    import_job = import_job_create(
        project=project, user=admin_user, paths=[str(folder)], source="vendor", labels_from_folders=True
    )
    # The import embeds the images with the default backbone and opens round 0 by itself;
    # the folder pre-labels, as weak labels, give the project a head to predict with.
    import_job_run(job_id=import_job.pk, then="inline")
    assert Round.objects.filter(project=project, number=0).exists()
    retrain = job_create(project=project, kind=Job.Kind.RETRAIN)
    head = retrain_fit(job_id=retrain.pk)
    job_succeed(job=retrain)

    labeled = queue_next(user=moderator, project=project)
    # No folder pre-labels "weapons", so this answer is told apart from the import's pre-label.
    annotation, _ = annotation_submit(
        user=moderator, item_id=labeled.item.pk, client_key="world-label", category_key="weapons"
    )
    annotation_submit(
        user=moderator, item_id=labeled.item.pk, client_key="world-flag", kind="flag", note="is a toy gun a weapon?"
    )
    items = {
        "moderator": queue_next(user=moderator, project=project).item.pk,
        "admin": queue_next(user=admin_user, project=project).item.pk,
    }
    image = Image.objects.get(pk=labeled.item.image_id)
    reveals = {
        "moderator": reveal_record(user=moderator, image=image).pk,
        "admin": reveal_record(user=admin_user, image=image).pk,
    }
    for stranger in ("anonymous", "outsider"):
        items[stranger], reveals[stranger] = items["moderator"], reveals["moderator"]

    export_job = export_job_create(project=project, user=admin_user, fmt="jsonl", filters={})
    export_run(job_id=export_job.pk)
    export_job.refresh_from_db()
    import_job.refresh_from_db()
    assert import_job.status == Job.Status.SUCCEEDED and export_job.status == Job.Status.SUCCEEDED
    users = {"anonymous": None, "outsider": outsider, "moderator": moderator, "admin": admin_user}
    return World(
        project=project,
        users=users,
        image=image,
        import_job=import_job,
        export_job=export_job,
        items=items,
        reveals=reveals,
        head=head,
        annotation=annotation,
    )


@pytest.fixture
def world(project, admin_user, moderator, outsider, tmp_path) -> World:
    return build_world(
        project=project, admin_user=admin_user, moderator=moderator, outsider=outsider, folder=tmp_path / "incoming"
    )


def stored_state() -> dict:
    """What a refused request must not change: rows that matter, and the stored files."""
    root = Path(settings.MEDIA_ROOT)
    return {
        "projects": list(Project.objects.order_by("pk").values_list("pk", "slug", "overlap", "quality")),
        "users": list(get_user_model().objects.order_by("pk").values_list("pk", "username")),
        "categories": list(Category.objects.order_by("pk").values_list("pk", "key", "name", "order", "guideline")),
        "memberships": list(
            Membership.objects.order_by("pk").values_list("pk", "role", "reveal_budget", "blur_strength", "greyscale")
        ),
        "jobs": list(Job.objects.order_by("pk").values_list("pk", "status")),
        "images": list(Image.objects.order_by("pk").values_list("pk", "status", "is_gold", "gold_label")),
        "rounds": list(Round.objects.order_by("pk").values_list("pk", "status")),
        "queue_items": list(QueueItem.objects.order_by("pk").values_list("pk", "labels_count", "done")),
        "assignments": list(Assignment.objects.order_by("pk").values_list("pk", "completed", "expires")),
        "annotations": Annotation.objects.count(),
        "adjudications": Adjudication.objects.count(),
        "flag_resolutions": FlagResolution.objects.count(),
        "reveals": list(Reveal.objects.order_by("pk").values_list("pk", "duration_ms")),
        "model_versions": ModelVersion.objects.count(),
        "tokens": Token.objects.count(),
        "media": sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
    }


# --- the expectations table --------------------------------------------------------------------


@dataclass(frozen=True)
class Redirect:
    """A 302 whose Location resolves to the URL named ``to``."""

    to: str


LOGIN = Redirect("login")
DENIED = frozenset({401, 403})


def credentials(world: World, role: str) -> dict:
    user = world.users[role]
    return {"username": user.username, "password": "pw-" + user.username} if user else {}


def one_upload(world: World, role: str) -> dict:
    return {"files": [SimpleUploadedFile("new.jpg", f.jpeg_bytes(50))]}


def one_image(world: World, role: str) -> dict:
    return {"files": [SimpleUploadedFile("new.jpg", f.jpeg_bytes(51))]}


def settings_form(world: World, role: str) -> dict:
    """The project's settings as its settings form posts them, with a new overlap."""
    initial = ProjectSettingsForm(instance=world.project).initial
    data = {name: value for name, value in initial.items() if value is not None and value is not False}
    data["overlap"] = 3
    for name, value in world.project.quality.items():
        data[f"quality-{name}"] = ", ".join(value) if isinstance(value, list) else value
    return data


def taxonomy_form(world: World, role: str) -> dict:
    """The project's categories as the taxonomy editor posts them, the first two swapped."""
    categories = list(world.project.categories.all())
    data = {"categories-TOTAL_FORMS": len(categories), "categories-INITIAL_FORMS": len(categories)}
    for i, category in enumerate(categories):
        row = {"id": category.pk, "key": category.key, "name": category.name, "hotkey": category.hotkey}
        row["ORDER"] = {0: 2, 1: 1}.get(i, i + 1)
        data.update({f"categories-{i}-{name}": value for name, value in row.items()})
    return data


def without_rounds(world: World) -> None:
    Round.objects.filter(project=world.project).delete()


@dataclass(frozen=True)
class Row:
    """One method of one route: the answer per role (in ``ROLES`` order) and how to ask.

    ``allowed``: roles for which the request is permitted; for the others it is refused
    and must leave ``stored_state()`` as it was. ``writes``: a permitted request changes
    the stored state (checked for forms, whose answer is a redirect either way).
    """

    method: str
    expect: tuple
    allowed: frozenset = MEMBERS
    kwargs: dict = field(default_factory=dict)
    data: dict | Callable[[World, str], dict] | None = None
    body: str = "json"
    before: Callable[[World], None] | None = None
    writes: bool = False


def api_read(**kw) -> Row:
    return Row("GET", (DENIED, 404, 200, 200), **kw)


def api_member_write(ok, **kw) -> Row:
    return Row("POST", (DENIED, 404, ok, ok), **kw)


def api_admin(method: str, ok, **kw) -> Row:
    return Row(method, (DENIED, 404, 403, ok), allowed=ADMINS, **kw)


def page_read(**kw) -> Row:
    return Row("GET", (LOGIN, 404, 200, 200), **kw)


def admin_page(method: str, moderator, admin, **kw) -> Row:
    return Row(method, (LOGIN, 404, moderator, admin), allowed=ADMINS, body="form", **kw)


EXPECTED: dict[str, list[Row]] = {
    # The REST API. Not signed in: 403 (DRF's session authentication comes first, so no
    # WWW-Authenticate challenge). Not a member: 404, so a project's existence does not leak.
    "api-token": [Row("POST", (400, 200, 200, 200), allowed=EVERYONE, data=credentials)],
    "api-projects": [
        Row("GET", (DENIED, 200, 200, 200), allowed=SIGNED_IN),
        Row("POST", (DENIED, 403, 403, 403), allowed=NOBODY, data={"slug": "fresh"}),  # site staff only
    ],
    "api-project": [api_read()],
    "api-project-images": [api_read()],
    "api-project-upload": [api_admin("POST", 202, data=one_upload, body="multipart")],
    "api-project-jobs": [api_read()],
    "api-class-balance": [api_read()],
    "api-import-summary": [api_read()],
    "api-queue-next": [api_member_write(200)],
    "api-queue-status": [api_read()],
    "api-queue-undo": [api_member_write(frozenset({200, 204}), data={"client_key": "undo-once"})],
    "api-queue-submit": [api_member_write(201, data={"client_key": "submit-once", "category": "violence"})],
    "api-reveal-finish": [api_member_write(204, data={"duration_ms": 1500})],
    "api-reveal-budget": [api_admin("POST", 204, data={"username": "mod", "budget": 3})],
    "api-rounds": [api_read()],
    "api-rounds-start": [api_admin("POST", 201, before=without_rounds)],
    "api-retrain": [api_admin("POST", 202)],
    "api-pretrain": [api_admin("POST", 202, data={"minutes": 1})],
    "api-embed": [api_admin("POST", 202)],
    "api-categories": [api_read(), api_admin("POST", 201, data={"key": "spam", "name": "Spam"})],
    "api-annotations": [api_read()],
    # A moderator corrects their own label (the world's one label is the moderator's); an admin anyone's.
    "api-annotation-correct": [api_member_write(201, data={"category": "violence", "client_key": "correct-once"})],
    "api-model-versions": [api_read()],
    # The classifier: any member may ask it for predictions; its file and card are for admins.
    "api-predict": [api_member_write(200, data=one_image, body="multipart")],
    "api-classifier-download": [api_admin("GET", 200)],
    "api-classifier-card": [api_admin("GET", 200)],
    "api-agreement": [api_admin("GET", 200)],
    "api-disagreements": [api_admin("GET", 200)],
    "api-model-disagreements": [api_admin("GET", 200)],
    "api-exports": [api_admin("POST", 202, data={"format": "csv"})],
    "api-export-stream": [api_admin("GET", 200, data={"format": "jsonl"})],
    # Export files answer 404 to moderators too: an export id says nothing to them.
    "api-export-download": [Row("GET", (DENIED, 404, 404, 200), allowed=ADMINS)],
    "api-adjudications": [
        api_admin("GET", 200),
        api_admin("POST", 201, data={"category": "drugs", "reason": "a syringe is visible"}),
    ],
    "api-gold": [api_admin("POST", 204, data={"category": "violence"})],
    # The flag queue: who flagged what and why is for the admins who resolve flags.
    "api-flags": [api_admin("GET", 200)],
    "api-flag-resolutions": [
        api_admin("GET", 200),
        api_admin("POST", 201, data={"action": "dismiss", "note": "within the guideline"}),
    ],
    "api-image": [api_read()],
    "api-job": [api_read()],
    "api-schema": [Row("GET", (200, 200, 200, 200), allowed=EVERYONE)],
    "api-docs": [Row("GET", (200, 200, 200, 200), allowed=EVERYONE)],
    # Pages. Not signed in: to the sign-in page. Not a member: 404. A moderator asking for
    # an admin's page or form goes back to the project page with a message; a refused form
    # (an adjudication a moderator may not make) goes back to the page it came from.
    "login": [
        Row("GET", (200, 200, 200, 200), allowed=EVERYONE),
        Row(
            "POST",
            (200, Redirect("project-list"), Redirect("project-list"), Redirect("project-list")),
            allowed=EVERYONE,
            data=credentials,
            body="form",
        ),
    ],
    "logout": [Row("POST", (LOGIN, LOGIN, LOGIN, LOGIN), allowed=EVERYONE, body="form")],
    "project-list": [Row("GET", (LOGIN, 200, 200, 200), allowed=SIGNED_IN)],
    "project-detail": [page_read()],
    "project-upload": [
        admin_page("POST", Redirect("project-detail"), Redirect("project-detail"), data=one_upload, writes=True)
    ],
    # Creating a project is for site staff; none of these users is.
    "project-create": [
        Row("GET", (LOGIN,) + (Redirect("project-list"),) * 3, allowed=NOBODY),
        Row("POST", (LOGIN,) + (Redirect("project-list"),) * 3, allowed=NOBODY, body="form", data={"slug": "fresh"}),
    ],
    "project-settings": [
        admin_page("GET", Redirect("project-detail"), 200),
        admin_page("POST", Redirect("project-detail"), Redirect("project-settings"), data=settings_form, writes=True),
    ],
    "project-categories": [
        admin_page("POST", Redirect("project-detail"), Redirect("project-settings"), data=taxonomy_form, writes=True)
    ],
    "project-member-add": [
        admin_page(
            "POST",
            Redirect("project-detail"),
            Redirect("project-settings"),
            data={"username": "eve", "role": "moderator"},
            writes=True,
        ),
        # Creating an account answers with the page that shows its password, once.
        admin_page(
            "POST",
            Redirect("project-detail"),
            200,
            data={"username": "newbie", "role": "moderator", "create": "on"},
            writes=True,
        ),
    ],
    "project-member-change": [
        admin_page(
            "POST",
            Redirect("project-detail"),
            Redirect("project-settings"),
            kwargs={"username": "mod"},
            data={"mod-role": "moderator", "mod-reveal_budget": "7"},
            writes=True,
        )
    ],
    "project-member-remove": [
        admin_page(
            "POST", Redirect("project-detail"), Redirect("project-settings"), kwargs={"username": "mod"}, writes=True
        )
    ],
    "label": [page_read()],
    "project-items": [page_read(), page_read(data={"label": "weapons", "sort": "-confidence"})],
    "project-item": [page_read()],
    "label-preferences": [
        Row(
            "POST",
            (LOGIN, 404, Redirect("label"), Redirect("label")),
            body="form",
            data={"blur_strength": "12", "greyscale": "on"},
            writes=True,
        )
    ],
    "project-dashboard": [admin_page("GET", Redirect("project-detail"), 200)],
    "project-dashboard-action": [
        admin_page(
            "POST", Redirect("project-detail"), Redirect("project-dashboard"), kwargs={"action": "retrain"}, writes=True
        )
    ],
    "project-review": [admin_page("GET", Redirect("project-detail"), 200)],
    "project-review-csv": [admin_page("GET", Redirect("project-detail"), 200, kwargs={"report": "disagreements"})],
    "project-review-adjudicate": [
        admin_page(
            "POST",
            Redirect("project-review"),
            Redirect("project-review"),
            data={"category": "drugs", "reason": "a syringe"},
            writes=True,
        )
    ],
    "project-flags": [admin_page("GET", Redirect("project-detail"), 200)],
    "project-flags-resolve": [
        admin_page(
            "POST",
            Redirect("project-flags"),
            Redirect("project-flags"),
            data={"action": "dismiss", "note": "within the guideline"},
            writes=True,
        )
    ],
    "project-review-export": [
        admin_page(
            "POST", Redirect("project-detail"), Redirect("project-review"), data={"format": "jsonl"}, writes=True
        )
    ],
    "image-file": [page_read(kwargs={"variant": variant}) for variant in VARIANTS],
    # Django's admin site is for site staff; none of these users is.
    "admin:index": [Row("GET", (Redirect("admin:login"),) * 4, allowed=NOBODY)],
    "admin:labeling_image_changelist": [Row("GET", (Redirect("admin:login"),) * 4, allowed=NOBODY)],
}


# --- walking the resolver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    params: tuple[str, ...]
    callback: Callable
    namespace: str


def _params(pattern) -> tuple[str, ...]:
    converters = getattr(pattern, "converters", None)
    if converters is not None:
        return tuple(converters)
    return tuple(pattern.regex.groupindex)


def all_routes(
    resolver: URLResolver | None = None, prefix: str = "", namespace: str = "", params: tuple[str, ...] = ()
) -> Iterator[Route]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from all_routes(entry, prefix + str(entry.pattern), inner, params + _params(entry.pattern))
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else ""
            yield Route(name, prefix + str(entry.pattern), params + _params(entry.pattern), entry.callback, namespace)


def project_routes() -> list[Route]:
    """Every route but Django's own admin site (two rows of which stand for all of it)."""
    return [r for r in all_routes() if not r.namespace.startswith("admin:") or r.name in EXPECTED]


def api_methods(callback) -> set[str] | None:
    view = getattr(callback, "cls", None)
    if view is None:
        return None
    return {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}


def test_every_route_has_a_row():
    routes = project_routes()
    unnamed = [r.path for r in routes if not r.name]
    missing = sorted({r.name for r in routes if r.name and r.name not in EXPECTED})
    stale = sorted(set(EXPECTED) - {r.name for r in routes})
    assert not unnamed, f"routes without a name cannot have a row: {unnamed}"
    assert not missing, f"routes without a row in EXPECTED: {missing}"
    assert not stale, f"rows in EXPECTED for routes that no longer exist: {stale}"
    for route in routes:
        methods = api_methods(route.callback)
        if methods is not None:
            assert methods == {row.method for row in EXPECTED[route.name]}, (
                f"{route.name} answers {sorted(methods)}; EXPECTED has rows for "
                f"{sorted({row.method for row in EXPECTED[route.name]})}"
            )
        for row in EXPECTED[route.name]:
            assert len(row.expect) == len(ROLES), route.name


# --- asking ------------------------------------------------------------------------------------


def client_for(world: World, role: str, **options) -> Client:
    client = Client(**options)
    if world.users[role] is not None:
        client.force_login(world.users[role])
    return client


def send(client: Client, row: Row, url: str, world: World, role: str, **extra):
    data = row.data(world, role) if callable(row.data) else dict(row.data or {})
    if row.method == "GET":
        response = client.get(url, data, **extra)
    elif row.body == "json":
        response = client.post(url, json.dumps(data), content_type="application/json", **extra)
    else:
        response = client.post(url, data, **extra)
    if response.streaming:
        # Reading to the end closes the file, as a WSGI server would.
        response.body = b"".join(response.streaming_content)
    else:
        response.body = response.content
    return response


def describe(response) -> str:
    if response.status_code in (301, 302):
        return f"{response.status_code} to {response['Location']}"
    return str(response.status_code)


def matches(expected, response) -> bool:
    if isinstance(expected, Redirect):
        if response.status_code != 302:
            return False
        try:
            return resolve(urlsplit(response["Location"]).path).view_name == expected.to
        except Resolver404:
            return False
    if isinstance(expected, int):
        return response.status_code == expected
    return response.status_code in expected


def cells(world: World, role: str) -> Iterator[tuple[str, str, Row]]:
    for route in project_routes():
        for row in EXPECTED[route.name]:
            yield (
                route.name,
                reverse(route.name, kwargs=world.url_kwargs(route.name, route.params, role, row.kwargs)),
                row,
            )


def ask(world: World, role: str, name: str, url: str, row: Row, **client_options) -> tuple[object, dict, dict]:
    """Send one request inside a savepoint that is rolled back; the response and the
    stored state before and after it."""
    with transaction.atomic():
        client = client_for(world, role, **client_options)
        if row.before:
            row.before(world)
        before = stored_state()
        response = send(client, row, url, world, role)
        after = stored_state()
        transaction.set_rollback(True)
    return response, before, after


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(world, role):
    index = ROLES.index(role)
    problems = []
    for name, url, row in cells(world, role):
        response, before, after = ask(world, role, name, url, row)
        expected = row.expect[index]
        where = f"{row.method} {url} ({name})"
        if not matches(expected, response):
            problems.append(f"{where}: expected {expected}, got {describe(response)}: {response.body[:200]!r}")
        if role not in row.allowed and before != after:
            changed = sorted(k for k in before if before[k] != after[k])
            problems.append(f"{where}: refused, yet changed {changed}")
        if role in row.allowed and row.writes and before == after:
            problems.append(f"{where}: permitted, yet nothing was stored")
        if name.startswith("api-") and name not in ("api-schema", "api-docs") and response.status_code >= 400:
            body = json.loads(response.body)
            if set(body) != {"message", "code", "extra"}:
                problems.append(f"{where}: error body is not {{message, code, extra}}: {body}")
    assert not problems, "\n".join(problems)


# --- the write services, called directly ------------------------------------------------------

# Each write service checks its actor itself, so code, commands and the admin get the API's
# answer: the service behind a route, called as each signed-in role, is refused or not as
# the route's row says (404: NotFound, 403: Forbidden, anything else: permitted).
ServiceCall = Callable[[World, str, object], object]

SERVICES: dict[tuple[str, str], ServiceCall] = {
    ("api-projects", "POST"): lambda w, role, user: projects.project_create_by(actor=user, slug="fresh"),
    ("api-project-upload", "POST"): lambda w, role, user: ingest.import_job_submit(
        actor=user, project=w.project, uploads=one_upload(w, role)["files"]
    ),
    ("api-categories", "POST"): lambda w, role, user: projects.category_add(
        actor=user, project=w.project, category={"key": "spam", "name": "Spam"}
    ),
    ("api-reveal-budget", "POST"): lambda w, role, user: wellbeing.reveal_budget_set(
        actor=user, project=w.project, user=w.users["moderator"], budget=3
    ),
    ("api-rounds-start", "POST"): lambda w, role, user: rounds.round_start(actor=user, project=w.project),
    ("api-retrain", "POST"): lambda w, role, user: rounds.retrain_job_submit(actor=user, project=w.project),
    ("api-pretrain", "POST"): lambda w, role, user: training.pretrain_job_submit(
        actor=user, project=w.project, minutes=1
    ),
    ("api-embed", "POST"): lambda w, role, user: training.embed_job_submit(actor=user, project=w.project),
    ("api-exports", "POST"): lambda w, role, user: exports.export_job_submit(
        actor=user, project=w.project, fmt="csv", filters={}
    ),
    ("api-adjudications", "POST"): lambda w, role, user: adjudication.adjudicate(
        actor=user, image=w.image, category_key="drugs", reason="a syringe is visible"
    ),
    ("api-flag-resolutions", "POST"): lambda w, role, user: flags.flag_resolve(
        actor=user, image=w.image, action="dismiss", note="within the guideline"
    ),
    ("api-gold", "POST"): lambda w, role, user: adjudication.gold_set(
        actor=user, image=w.image, category_key="violence"
    ),
    ("api-queue-next", "POST"): lambda w, role, user: queue.queue_next(user=user, project=w.project),
    ("api-queue-submit", "POST"): lambda w, role, user: queue.annotation_submit(
        user=user, item_id=w.items[role], client_key="submit-once", category_key="violence"
    ),
    ("api-queue-undo", "POST"): lambda w, role, user: queue.annotation_undo(
        user=user, project=w.project, client_key="undo-once"
    ),
    ("api-reveal-finish", "POST"): lambda w, role, user: wellbeing.reveal_finish(
        user=user, reveal_id=w.reveals[role], duration_ms=1500
    ),
    ("image-file", "GET"): lambda w, role, user: wellbeing.reveal_record(user=user, image=w.image),
    ("api-annotation-correct", "POST"): lambda w, role, user: corrections.annotation_correct(
        actor=user, annotation_id=w.annotation.pk, category_key="violence", client_key="correct-once"
    ),
}


def outcome_of(expected) -> str:
    if expected == 404:
        return "not found"
    if expected == 403:
        return "forbidden"
    return "permitted"


def test_every_write_service_has_a_route_row():
    for name, method in SERVICES:
        assert any(row.method == method for row in EXPECTED[name]), (name, method)


@pytest.mark.parametrize("role", sorted(SIGNED_IN))
def test_write_services_check_their_actor_as_the_api_does(world, role):
    index = ROLES.index(role)
    problems = []
    for (name, method), call in SERVICES.items():
        row = next(r for r in EXPECTED[name] if r.method == method)
        expected = outcome_of(row.expect[index])
        with transaction.atomic():
            if row.before:
                row.before(world)
            before = stored_state()
            try:
                call(world, role, world.users[role])
            except NotFound:
                got = "not found"
            except Forbidden:
                got = "forbidden"
            except ApplicationError as exc:
                got = f"refused otherwise ({exc.code}: {exc.message})"
            else:
                got = "permitted"
            after = stored_state()
            transaction.set_rollback(True)
        if got != expected:
            problems.append(f"{name} as {role}: expected {expected}, got {got}")
        if got != "permitted" and before != after:
            problems.append(
                f"{name} as {role}: refused, yet changed {sorted(k for k in before if before[k] != after[k])}"
            )
    assert not problems, "\n".join(problems)


def test_moderators_never_see_what_other_moderators_answered(world, make_user):
    """Labels are independent: a moderator sees an image's pre-label, never its
    consensus (admins see both), nor others' annotations or the admins' decisions."""
    second = make_user("second")
    membership_set(project=world.project, user=second, role=Membership.Role.MODERATOR)
    image_url = reverse("api-image", args=[world.image.pk])
    list_url = reverse("api-project-images", args=[world.project.slug])
    pre_label = world.image.source_label.key if world.image.source_label else None
    admin, peer = client_for(world, "admin"), Client()
    peer.force_login(second)
    assert admin.get(image_url).json()["metadata"]["category"] == "weapons"
    assert peer.get(image_url).json()["metadata"]["category"] == pre_label
    listed = {row["id"]: row for row in peer.get(list_url).json()["results"]}
    assert listed[world.image.pk]["metadata"]["category"] == pre_label
    assert peer.get(reverse("api-annotations", args=[world.project.slug])).json()["count"] == 0
    assert peer.get(reverse("api-adjudications", args=[world.image.pk])).status_code == 403


# --- image files -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_image_files_by_role_and_variant(world, role):
    client = client_for(world, role)
    image = world.image
    stored = {
        "blurred": image.blurred,
        "sketch": image.sketch,
        "original": image.original,
        "thumbnail": image.thumbnail,
    }
    for variant in VARIANTS:
        reveals = Reveal.objects.count()
        response = client.get(reverse("image-file", args=[image.pk, variant]))
        if role == "anonymous":
            assert matches(LOGIN, response), (variant, describe(response))
        elif role == "outsider":
            assert response.status_code == 404, (variant, describe(response))
        else:
            assert response.status_code == 200, (variant, describe(response))
            with default_storage.open(stored[variant], "rb") as handle:
                assert response.getvalue() == handle.read(), variant
            assert response["Content-Type"].startswith("image/")
            assert response["X-Content-Type-Options"] == "nosniff"
            assert response["Cache-Control"].startswith("private")
            revealing = variant in ("original", "thumbnail")
            assert Reveal.objects.count() == reveals + revealing, f"{variant}: a reveal is recorded iff unblurred"
            if revealing:
                assert "no-store" in response["Cache-Control"]
                assert Reveal.objects.get(pk=response["X-Veil-Reveal"]).user == world.users[role]
            else:
                assert "X-Veil-Reveal" not in response
        if role in ("anonymous", "outsider"):
            assert Reveal.objects.count() == reveals, f"{variant}: a refused request recorded a reveal"


def test_unknown_variants_and_images_are_404(world):
    client = client_for(world, "admin")
    rejected = Image.objects.filter(project=world.project).exclude(status=Image.Status.ACCEPTED).first()
    assert rejected is not None and not rejected.original
    for url in (
        reverse("image-file", args=[world.image.pk, "raw"]),
        f"/images/{world.image.pk}/..%2Foriginal/",
        reverse("image-file", args=[rejected.pk, "original"]),
        reverse("image-file", args=[10**12, "blurred"]),
    ):
        assert client.get(url).status_code == 404, url


def stored_files() -> list[str]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_stored_media_have_no_public_url(world):
    admin, anonymous = client_for(world, "admin"), Client()
    for variant in VARIANTS:  # sketches are drawn on first request
        assert admin.get(reverse("image-file", args=[world.image.pk, variant])).status_code == 200
    names = stored_files()
    image = world.image
    expected = {image.original, image.thumbnail, image.blurred, image.sketch, world.export_job.result["file"]}
    assert expected <= set(names), expected - set(names)
    prefixes = {"/", "/media/", "/" + settings.STATIC_URL.strip("/") + "/"}
    if settings.MEDIA_URL:
        prefixes.add("/" + settings.MEDIA_URL.strip("/") + "/")
    for name in names:
        assert finders.find(name) is None, f"{name} is found by the static files finders"
        for prefix in prefixes:
            url = prefix + name
            with pytest.raises(Resolver404):
                resolve(url)
            for client in (admin, anonymous):
                response = client.get(url)
                assert response.status_code == 404, f"{url}: {describe(response)}"


def test_settings_serve_no_media():
    from django.views.static import serve

    for route in all_routes():
        assert route.callback is not serve, f"{route.path} serves files from disk"
        assert not route.path.startswith("media/"), route.path
    media = Path(settings.MEDIA_ROOT).resolve()
    static_dirs = [Path(settings.STATIC_ROOT).resolve(), *(Path(d).resolve() for d in settings.STATICFILES_DIRS)]
    for folder in static_dirs:
        assert not media.is_relative_to(folder) and not folder.is_relative_to(media), (media, folder)
    assert settings.MEDIA_URL in ("", "/"), "a MEDIA_URL invites serving media by URL"
    assert getattr(settings, "WHITENOISE_ROOT", None) is None


def test_production_settings_keep_media_private(tmp_path):
    """Production (WhiteNoise for static files; media in a private bucket when configured)."""
    script = (
        "import json\n"
        "from django.conf import settings\n"
        "s = settings.STORAGES['default']\n"
        "print(json.dumps({'backend': s['BACKEND'], 'options': s.get('OPTIONS', {}),"
        " 'media_url': settings.MEDIA_URL, 'whitenoise_root': getattr(settings, 'WHITENOISE_ROOT', None),"
        " 'debug': settings.DEBUG, 'static_root': str(settings.STATIC_ROOT),"
        " 'media_root': str(settings.MEDIA_ROOT)}))\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "moderation.settings.production",
        "DJANGO_SECRET_KEY": "x" * 50,
        "VEIL_S3_BUCKET": "veil-media",
        "VEIL_VAR_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=settings.BASE_DIR,
        timeout=120,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["backend"] == "storages.backends.s3.S3Storage"
    assert found["options"]["default_acl"] == "private" and found["options"]["querystring_auth"] is True
    assert not found["options"].get("custom_domain"), "a custom domain serves objects without signatures"
    assert found["debug"] is False and found["whitenoise_root"] is None
    assert found["media_url"] in ("", "/")
    assert not Path(found["media_root"]).is_relative_to(found["static_root"])


# --- CSRF --------------------------------------------------------------------------------------


def session_writes() -> list[tuple[str, Row]]:
    return [(route.name, row) for route in project_routes() for row in EXPECTED[route.name] if row.method == "POST"]


def test_session_writes_need_the_csrf_token(world):
    """Signed in by session, every POST without the token is refused with 403 and changes
    nothing; with the token it gets the admin's usual answer."""
    problems = []
    index = ROLES.index("admin")
    writes = session_writes()
    assert {"api-queue-submit", "api-project-upload", "project-upload", "logout"} <= {name for name, _ in writes}
    for name, row in writes:
        params = next(r.params for r in project_routes() if r.name == name)
        url = reverse(name, kwargs=world.url_kwargs(name, params, "admin", row.kwargs))
        with transaction.atomic():
            client = client_for(world, "admin", enforce_csrf_checks=True)
            if row.before:
                row.before(world)
            before = stored_state()
            refused = send(client, row, url, world, "admin")
            after = stored_state()
            token = client.get(reverse("login")).cookies["csrftoken"].value
            accepted = send(client, row, url, world, "admin", HTTP_X_CSRFTOKEN=token)
            transaction.set_rollback(True)
        where = f"POST {url} ({name})"
        if refused.status_code != 403 or b"CSRF" not in refused.content:
            problems.append(f"{where} without the token: {describe(refused)}")
        if before != after:
            changed = sorted(k for k in before if before[k] != after[k])
            problems.append(f"{where} without the token changed {changed}")
        if not matches(row.expect[index], accepted):
            problems.append(f"{where} with the token: expected {row.expect[index]}, got {describe(accepted)}")
    assert not problems, "\n".join(problems)


def test_signing_in_needs_the_csrf_token(world):
    client = Client(enforce_csrf_checks=True)
    url = reverse("login")
    data = credentials(world, "moderator")
    assert client.post(url, data).status_code == 403
    token = client.get(url).cookies["csrftoken"].value
    assert matches(Redirect("project-list"), client.post(url, {**data, "csrfmiddlewaretoken": token}))


def test_token_authenticated_writes_need_no_csrf_token(world):
    """A token is not sent by a browser on its own, so it needs no CSRF token."""
    token = Token.objects.create(user=get_user_model().objects.get(username="mod"))
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.post(reverse("api-queue-next", args=[world.project.slug]))
    assert response.status_code == 200, describe(response)
