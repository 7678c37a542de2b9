"""The item browser: a project's images, filtered and sorted, a keyset page at a time; and
one item with everything known about it.

What each filter means:

- ``status``, ``split``, ``reason``, ``source``, ``text``: the image's own fields (``text``:
  the text read from the image contains it).
- ``round``: the image was queued in the round of that number.
- ``prelabel``: the import's folder pre-label. ``predicted``: the active head's predicted
  category. ``label``: the final label (:mod:`labeling.selectors.labels`) for admins; for
  a moderator, who never sees final labels other than pre-labels, the pre-label.
- ``label_source`` (admins): where the final label comes from, or ``none``; exact, in SQL.
- ``agreement`` (admins): ``split`` (the moderators' current labels disagree) or ``full``
  (they all agree, at least one label).
- ``flagged``: has a flag for policy review (a moderator: one of their own flags).
- Every member sees the active head's predictions (as any member may ask the classifier).
- ``sort``: by id (the default), or by the active head's ``confidence`` or ``entropy``
  (ascending; ``-`` first for descending), which lists only images the head predicted.

Paging is by keyset: a page ends with a cursor naming its last row's sort key and id,
and the next page starts after it, so a page deep in 200,000 images costs what the first
does, and rows added meanwhile neither repeat nor shift a page.

Final labels are computed for a page's rows only. The ``label`` and ``agreement`` filters
are first narrowed in SQL to a superset (an adjudication that decides it, or a current
label that could make the consensus, or the head's or the import's label where nothing
else decides), then each candidate's final label is checked by the one rule. A page
checks at most ``SCAN_LIMIT`` candidates: it may hold fewer rows than asked, with a
cursor to carry on; such a listing is not counted (``count`` None), since only walking
it to the end would tell.
Counts are cached for ``COUNT_SECONDS`` per project, viewer and filters (so a count may be
that old), and asked for on the first page only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse

from labeling import permissions
from labeling.errors import ApplicationError, NotFound
from labeling.models import Adjudication, Annotation, Category, Image, ModelVersion, Prediction, Project, QueueItem
from labeling.selectors.images import image_metadata
from labeling.selectors.labels import FinalLabel, current_label_annotations, final_labels_for_user

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
SCAN_LIMIT = 2000
COUNT_SECONDS = 60
SORTS = ("id", "-id", "confidence", "-confidence", "entropy", "-entropy")
LABEL_SOURCES = ("adjudicated", "consensus", "model", "import", "none")
AGREEMENTS = ("split", "full")
ADMIN_ONLY = ("label_source", "agreement")


@dataclass(frozen=True)
class ItemQuery:
    """The item browser's filters and sort (see the module docstring), as parsed from a request."""

    status: str = ""
    split: str = ""
    reason: str = ""
    source: str = ""
    text: str = ""
    round: int | None = None
    label: str = ""
    predicted: str = ""
    prelabel: str = ""
    label_source: str = ""
    agreement: str = ""
    flagged: bool | None = None
    sort: str = "id"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: its last row's sort value (None when sorting by id) and id."""

    value: float | None
    pk: int

    def encode(self) -> str:
        return str(self.pk) if self.value is None else f"{self.value!r}_{self.pk}"

    @classmethod
    def decode(cls, raw: str, *, sort: str) -> Cursor:
        try:
            if sort.lstrip("-") == "id":
                cursor = cls(None, int(raw))
            else:
                value, pk = raw.rsplit("_", 1)
                cursor = cls(float(value), int(pk))
            if not 0 <= cursor.pk < 2**63 or (cursor.value is not None and not math.isfinite(cursor.value)):
                raise ValueError(raw)
            return cursor
        except ValueError:
            raise ApplicationError(
                f"cursor {raw[:40]!r} is not a cursor of this listing (sort {sort!r}).", extra={"field": "cursor"}
            ) from None


@dataclass
class ItemRow:
    image: Image
    label: FinalLabel | None
    prediction: Prediction | None
    blurred_url: str
    url: str


@dataclass
class ItemPage:
    rows: list[ItemRow]
    next_cursor: str | None
    count: int | None
    scanned: int
    head: ModelVersion | None
    notes: list[str] = field(default_factory=list)


def active_head(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.HEAD, is_active=True).first()


def _category_or_error(project: Project, key: str, name: str) -> Category:
    category = Category.objects.filter(project=project, key=key).first()
    if category is None:
        raise ApplicationError(f"{name}: unknown category {key!r} for project {project.slug!r}.", extra={"field": name})
    return category


def _labels_of(user, project: Project, *, is_admin: bool) -> QuerySet[Annotation]:
    """Current labels (votes) on the outer image."""
    rows = current_label_annotations().filter(image=OuterRef("pk"))
    return rows if is_admin else rows.filter(user=user)


def filtered_items(*, user, project: Project, query: ItemQuery, head: ModelVersion | None) -> tuple[QuerySet, bool]:
    """The project's images matching ``query`` in SQL, and whether each row must still be
    checked against the final-label rule (the ``label`` and ``agreement`` filters)."""
    is_admin = permissions.can_review(user, project)
    for name in ADMIN_ONLY:
        if getattr(query, name) and not is_admin:
            raise ApplicationError(
                f"{name}: only admins of the project may filter by it (moderators label independently).",
                code="admin_only",
                extra={"field": name},
            )
    images = Image.objects.filter(project=project)
    for name in ("status", "split", "reason", "source"):
        if getattr(query, name):
            images = images.filter(**{name: getattr(query, name)})
    if query.text:
        images = images.filter(ocr_text__icontains=query.text)
    if query.round is not None:
        images = images.filter(
            Exists(QueueItem.objects.filter(image=OuterRef("pk"), round__project=project, round__number=query.round))
        )
    if query.prelabel:
        images = images.filter(source_label=_category_or_error(project, query.prelabel, "prelabel"))
    if query.predicted:
        category = _category_or_error(project, query.predicted, "predicted")
        predicted = Prediction.objects.filter(image=OuterRef("pk"), model_version=head, category=category)
        images = images.filter(Exists(predicted)) if head else images.none()
    if query.flagged is not None:
        flags = Annotation.objects.filter(image=OuterRef("pk"), kind=Annotation.Kind.FLAG)
        if not is_admin:
            flags = flags.filter(user=user)
        images = images.filter(Exists(flags) if query.flagged else ~Exists(flags))
    check = False
    adjudicated = Exists(Adjudication.objects.filter(image=OuterRef("pk")))
    voted = Exists(_labels_of(user, project, is_admin=True))
    if query.label_source:
        images = images.filter(
            {
                "adjudicated": Q(adjudicated),
                "consensus": ~Q(adjudicated) & Q(voted),
                "model": ~Q(adjudicated) & ~Q(voted) & Q(model_label__isnull=False),
                "import": ~Q(adjudicated) & ~Q(voted) & Q(model_label__isnull=True, source_label__isnull=False),
                "none": ~Q(adjudicated) & ~Q(voted) & Q(model_label__isnull=True, source_label__isnull=True),
            }[query.label_source]
        )
    if query.label:
        category = _category_or_error(project, query.label, "label")
        if not is_admin:
            images = images.filter(source_label=category)
        else:
            latest = Subquery(
                Adjudication.objects.filter(image=OuterRef("pk")).order_by("-created", "-pk").values("category")[:1]
            )
            vote_for = Exists(_labels_of(user, project, is_admin=True).filter(category=category))
            undecided = ~Q(adjudicated) & ~Q(voted)
            images = images.alias(decided=latest).filter(
                Q(adjudicated, decided=category.pk)
                | (~Q(adjudicated) & Q(vote_for))
                | (undecided & Q(model_label=category))
                | (undecided & Q(model_label__isnull=True, source_label=category))
            )
            check = True
    if query.agreement:
        votes = _labels_of(user, project, is_admin=True)
        if query.agreement == "split":
            other = current_label_annotations().filter(image=OuterRef("image")).exclude(category=OuterRef("category"))
            images = images.filter(Exists(votes.filter(Exists(other))))
        else:
            images = images.filter(Exists(votes))
        check = True
    return images, check


def _keep(row: ItemRow, query: ItemQuery) -> bool:
    final = row.label
    if query.label and (final is None or final.category.key != query.label):
        return False
    if query.agreement == "split":
        return final is not None and final.agreement is not None and final.agreement < 1
    if query.agreement == "full":
        return final is not None and final.agreement == 1
    return True


def _sorted(images: QuerySet, query: ItemQuery, head: ModelVersion | None, cursor: Cursor | None) -> QuerySet:
    key = query.sort.lstrip("-")
    descending = query.sort.startswith("-")
    if key == "id":
        if cursor is not None:
            images = images.filter(pk__lt=cursor.pk) if descending else images.filter(pk__gt=cursor.pk)
        return images.order_by("-pk" if descending else "pk")
    if head is None:
        raise ApplicationError(
            f"sort: no active head has predicted this project's images, so there is no {key} to sort by.",
            code="no_head",
            extra={"field": "sort"},
        )
    # Ordered and bounded by the prediction's own columns, so that the walk follows the index
    # (model_version, value, image) from the cursor on: an upper (or lower) bound on the value,
    # then the ties at the cursor's value after its image.
    images = images.filter(predictions__model_version=head).annotate(
        sort_value=F(f"predictions__{key}"), sort_image=F("predictions__image")
    )
    images = images.filter(sort_value__isnull=False)
    if cursor is not None:
        value, pk = cursor.value, cursor.pk
        if descending:
            images = images.filter(Q(sort_value__lte=value) & ~Q(sort_value=value, sort_image__gte=pk))
        else:
            images = images.filter(Q(sort_value__gte=value) & ~Q(sort_value=value, sort_image__lte=pk))
    return images.order_by(*(("-sort_value", "-sort_image") if descending else ("sort_value", "sort_image")))


def items_page(
    *, user, project: Project, query: ItemQuery, cursor: str | None = None, limit: int = PAGE_SIZE
) -> ItemPage:
    """One page of the item browser for ``user``, a member of ``project``."""
    permissions.require(permissions.can_view, user=user, project=project)
    limit = max(1, min(MAX_PAGE_SIZE, limit))
    head = active_head(project)
    position = Cursor.decode(cursor, sort=query.sort) if cursor else None
    images, check = filtered_items(user=user, project=project, query=query, head=head)
    rows: list[ItemRow] = []
    scanned = 0
    next_cursor = None
    if not check:
        batch = list(_sorted(images, query, head, position).select_related("source_label")[: limit + 1])
        rows = _rows(user, project, head, batch[:limit])
        if len(batch) > limit:
            next_cursor = _cursor_of(batch[limit - 1], query).encode()
    else:
        while True:
            step = min(SCAN_LIMIT - scanned, max(4 * limit, 200))
            batch = list(_sorted(images, query, head, position).select_related("source_label")[:step])
            scanned += len(batch)
            seen = 0
            for row in _rows(user, project, head, batch):
                seen += 1
                position = _cursor_of(row.image, query)
                if _keep(row, query):
                    rows.append(row)
                    if len(rows) == limit:
                        break
            more = seen < len(batch) or len(batch) == step
            if len(rows) == limit or not more or scanned >= SCAN_LIMIT:
                next_cursor = position.encode() if more and position is not None else None
                break
    count = None
    if cursor is None and not check:
        viewer = 0 if permissions.can_review(user, project) else user.pk
        count = cache.get_or_set(
            f"veil:items-count:{project.pk}@{project.created.timestamp()}:{viewer}:{query.key()}",
            lambda: _count(images, query, head),
            COUNT_SECONDS,
        )
    return ItemPage(rows=rows, next_cursor=next_cursor, count=count, scanned=scanned, head=head)


def _count(images: QuerySet, query: ItemQuery, head: ModelVersion | None) -> int:
    """How many rows the listing holds: sorted by a prediction's value and otherwise
    unfiltered, counted on the head's predictions index alone."""
    key = query.sort.lstrip("-")
    if key == "id":
        return images.count()
    if query == ItemQuery(sort=query.sort):
        return Prediction.objects.filter(model_version=head, **{f"{key}__isnull": False}).count()
    return _sorted(images, query, head, None).order_by().count()


def _cursor_of(image: Image, query: ItemQuery) -> Cursor:
    if query.sort.lstrip("-") == "id":
        return Cursor(None, image.pk)
    return Cursor(image.sort_value, image.pk)


def _rows(user, project: Project, head: ModelVersion | None, images: list[Image]) -> list[ItemRow]:
    ids = [image.pk for image in images]
    labels = final_labels_for_user(user=user, project=project, image_ids=ids)
    predictions = {}
    if head is not None and ids:
        predictions = {
            p.image_id: p
            for p in Prediction.objects.filter(model_version=head, image_id__in=ids).select_related("category")
        }
    return [
        ItemRow(
            image=image,
            label=labels.get(image.pk),
            prediction=predictions.get(image.pk),
            blurred_url=reverse("image-file", args=[image.pk, "blurred"]),
            url=reverse("project-item", args=[project.slug, image.pk]),
        )
        for image in images
    ]


# --- one item ----------------------------------------------------------------------------------


@dataclass
class AnnotationEntry:
    annotation: Annotation
    superseded_by: Annotation | None
    corrects: Annotation | None
    correctable: bool


@dataclass
class ItemDetail:
    image: Image
    label: FinalLabel | None
    metadata: dict
    annotations: list[AnnotationEntry]
    adjudications: list[Adjudication]
    prediction: Prediction | None
    probabilities: list[tuple[Category, float]]
    duplicates: list[Image]
    sees_everything: bool
    rounds: list[int]


def item_get_for_user(*, user, project: Project, image_id: int) -> ItemDetail:
    """Everything ``user`` may see about one image of ``project``: its final label (as
    :func:`final_labels_for_user` lets them), metadata, the annotations (an admin's: all;
    a moderator's: their own) with what superseded each, adjudications (admins), the
    active head's prediction, and its near duplicates."""
    permissions.require(permissions.can_view, user=user, project=project)
    image = (
        Image.objects.select_related("project", "source_label", "model_label", "duplicate_of")
        .filter(project=project, pk=image_id)
        .first()
    )
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    sees_everything = permissions.can_review(user, project)
    label = final_labels_for_user(user=user, project=project, image_ids=[image.pk]).get(image.pk)
    metadata = image_metadata(
        image, label=label.category.key if label else None, label_source=label.source if label else None
    )
    every = list(Annotation.objects.filter(image=image).select_related("user", "category", "round").order_by("pk"))
    by_pk = {a.pk: a for a in every}
    later: dict[int, Annotation] = {}
    for a in every:
        if a.supersedes_id is not None and a.supersedes_id not in later:
            later[a.supersedes_id] = a
    visible = every if sees_everything else [a for a in every if a.user_id == user.pk]
    may_correct_others = permissions.can_correct_others(user, project)
    entries = []
    for a in visible:
        superseded_by = later.get(a.pk)
        if superseded_by is not None and not sees_everything and superseded_by.user_id != user.pk:
            superseded_by = None  # an admin's correction of a moderator's label stays the admins' business
        correctable = (
            a.kind == Annotation.Kind.LABEL and a.pk not in later and (a.user_id == user.pk or may_correct_others)
        )
        corrects = by_pk.get(a.supersedes_id) if a.supersedes_id else None
        entries.append(AnnotationEntry(a, superseded_by, corrects, correctable))
    adjudications = (
        list(
            Adjudication.objects.filter(image=image).select_related("category", "decided_by").order_by("created", "pk")
        )
        if sees_everything
        else []
    )
    head = active_head(project)
    prediction = (
        Prediction.objects.filter(image=image, model_version=head).select_related("category").first() if head else None
    )
    categories = {c.key: c for c in project.categories.all()}
    probabilities = []
    if prediction is not None:
        probabilities = sorted(
            ((categories[k], v) for k, v in prediction.probabilities.items() if k in categories),
            key=lambda pair: -pair[1],
        )
    return ItemDetail(
        image=image,
        label=label,
        metadata=metadata,
        annotations=entries,
        adjudications=adjudications,
        prediction=prediction,
        probabilities=probabilities,
        duplicates=near_duplicates(image),
        sees_everything=sees_everything,
        rounds=sorted(set(QueueItem.objects.filter(image=image).values_list("round__number", flat=True))),
    )


MAX_DUPLICATES = 24


def near_duplicates(image: Image) -> list[Image]:
    """Images the import linked to ``image`` as (near) duplicates, either way, those sharing
    its original, and accepted images with the very same perceptual hash."""
    links = Q(duplicate_of=image)
    if image.duplicate_of_id:
        links |= Q(pk=image.duplicate_of_id) | Q(duplicate_of=image.duplicate_of_id)
    if image.phash is not None:
        links |= Q(phash=image.phash, status=Image.Status.ACCEPTED)
    return list(
        Image.objects.filter(project=image.project_id)
        .filter(links)
        .exclude(pk=image.pk)
        .order_by("pk")[:MAX_DUPLICATES]
    )
