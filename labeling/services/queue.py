"""The labeling queue: who labels what next, and what they answered.

``queue_next`` leases a moderator the highest-priority item of the project's open rounds
that they have not had before and that still has room: fewer than ``overlap`` finished
labels plus live leases. On PostgreSQL the candidate row is taken with ``SELECT ... FOR
UPDATE SKIP LOCKED``, so moderators asking at once get different rows without waiting,
and its leases are counted again under the row lock, since the candidate query may not
see a lease committed while it ran; on SQLite every write transaction takes the
database's write lock first (``transaction_mode = IMMEDIATE``), which serialises
hand-outs. An item's leases are only created, completed or renewed while its row is
locked, so the recount holds until the new lease commits.

Annotations are append-only. A submission carries a client key, so a retried POST returns
the first answer instead of adding a second; undo appends a retraction that supersedes
the label and hands the item back to the same moderator.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from labeling import permissions
from labeling.errors import ApplicationError, Conflict, NotFound
from labeling.models import (
    Annotation,
    Assignment,
    Category,
    Image,
    Project,
    QueueItem,
    Reveal,
    Round,
)
from labeling.services.rounds import round_complete
from labeling.services.wellbeing import activity_record, wellbeing_status


class OpenRound(NamedTuple):
    pk: int
    number: int
    created: datetime


@dataclass(frozen=True)
class Lease:
    """An item leased to a moderator.

    ``upcoming`` is a guess at their next item, to preload its blurred preview: the free
    item that followed this one in the queue (None when none did, or for a resumed lease,
    whose successor :func:`queue_peek` finds). ``open_rounds``: the open rounds it saw.
    """

    item: QueueItem
    assignment: Assignment
    resumed: bool
    upcoming: QueueItem | None = None
    open_rounds: tuple[OpenRound, ...] | None = None


def _open_items(project: Project):
    return QueueItem.objects.filter(round__project=project, round__status=Round.Status.OPEN, done=False)


def _open_rounds(project: Project) -> tuple[OpenRound, ...]:
    return tuple(
        OpenRound(*row)
        for row in Round.objects.filter(project=project, status=Round.Status.OPEN)
        .order_by("number")
        .values_list("pk", "number", "created")
    )


def queue_next(*, user, project: Project) -> Lease | None:
    """Lease the next item to ``user``, a member of the project, or None when nothing is
    left for them.

    A live lease the user already holds is handed back first (a reload, a retry, an undo).
    """
    permissions.require(permissions.can_label, user=user, project=project)
    now = timezone.now()
    live = Assignment.objects.filter(user=user, completed__isnull=True, expires__gt=now)
    # Most asks follow an answer and find no live lease: a bare look first.
    held = (
        live.select_related("item__image", "item__round")
        .filter(item__round__project=project, item__round__status=Round.Status.OPEN)
        .order_by("leased")
        .first()
        if live.exists()
        else None
    )
    if held is not None:
        return Lease(held.item, held, resumed=True)

    open_rounds = _open_rounds(project)
    round_ids = tuple(r.pk for r in open_rounds)
    with transaction.atomic():
        item, upcoming = _take_candidate(user=user, project=project, now=now, round_ids=round_ids)
        if item is None:
            return None
        assignment = Assignment.objects.create(
            item=item, user=user, expires=now + timedelta(minutes=project.lease_minutes)
        )
    return Lease(item, assignment, resumed=False, upcoming=upcoming, open_rounds=open_rounds)


def _take_candidate(
    *, user, project: Project, now, round_ids: tuple[int, ...]
) -> tuple[QueueItem | None, QueueItem | None]:
    """Lock the item to lease, and name the free item after it (not locked once this commits)."""
    if not round_ids:
        return None, None
    live_leases = (
        Assignment.objects.filter(item=OuterRef("pk"), completed__isnull=True, expires__gt=now)
        .order_by()
        .values("item")
        .annotate(n=Count("pk"))
        .values("n")
    )
    candidates = (
        QueueItem.objects.filter(done=False)
        .exclude(Exists(Assignment.objects.filter(item=OuterRef("pk"), user=user)))
        .exclude(image__model_label__isnull=False)
        .select_related("image", "round")
        .select_for_update(skip_locked=True, of=("self",))
    )
    if project.gold_rate and random.random() < project.gold_rate:
        # Gold items go to every moderator once, whatever the overlap: they measure people.
        gold = candidates.filter(round__in=round_ids, is_gold=True).order_by("?").first()
        if gold is not None:
            return gold, None
    candidates = candidates.annotate(leased=Coalesce(Subquery(live_leases), Value(0))).filter(
        labels_count__lt=project.overlap - F("leased")
    )
    # One query per open round, in round order, so that each walks the round's open-items
    # index in priority order and stops at the first free rows.
    for round_id in round_ids:
        item, upcoming = _lock_first_with_room(
            candidates.filter(round=round_id, is_gold=False).order_by("-priority", "pk"),
            user=user,
            project=project,
            now=now,
        )
        if item is not None:
            return item, upcoming
    return None, None


def _lock_first_with_room(candidates, *, user, project: Project, now) -> tuple[QueueItem | None, QueueItem | None]:
    """Lock the first of ``candidates`` that, counted again under its row lock, has room for ``user``.

    Rows come two at a time, so the second names the likely next item without another
    query; it is locked only until the caller's transaction commits.
    """
    passed: list[int] = []
    while rows := list(candidates.exclude(pk__in=passed)[:2]):
        item = rows[0]
        leases = Assignment.objects.filter(item=item).aggregate(
            live=Count("pk", filter=Q(completed__isnull=True, expires__gt=now)),
            mine=Count("pk", filter=Q(user=user)),
        )
        if not leases["mine"] and item.labels_count + leases["live"] < project.overlap:
            return item, rows[1] if len(rows) > 1 else None
        passed.append(item.pk)
    return None, None


def queue_peek(*, user, project: Project, exclude_item_id: int) -> QueueItem | None:
    """A guess at the user's next item, to preload its blurred preview: no lock, no lease.

    Their other live lease if they hold one, else the first open non-gold item of the
    earliest open round that they have not had. A wrong guess costs one small download.
    """
    now = timezone.now()
    held = (
        Assignment.objects.filter(
            user=user,
            item__round__project=project,
            item__round__status=Round.Status.OPEN,
            completed__isnull=True,
            expires__gt=now,
        )
        .exclude(item_id=exclude_item_id)
        .select_related("item__image")
        .order_by("leased")
        .first()
    )
    if held is not None:
        return held.item
    rounds = Round.objects.filter(project=project, status=Round.Status.OPEN).order_by("number")
    for round_id in rounds.values_list("pk", flat=True):
        # Per round, in priority order, so the query walks the round's open-items index.
        item = (
            QueueItem.objects.filter(round=round_id, done=False, is_gold=False)
            .exclude(pk=exclude_item_id)
            .exclude(Exists(Assignment.objects.filter(item=OuterRef("pk"), user=user)))
            .exclude(image__model_label__isnull=False)
            .select_related("image")
            .order_by("-priority", "pk")
            .first()
        )
        if item is not None:
            return item
    return None


def annotation_submit(
    *,
    user,
    item_id: int,
    client_key: str,
    kind: str = Annotation.Kind.LABEL,
    category_key: str | None = None,
    time_spent_ms: int = 0,
    revealed: bool = False,
    note: str = "",
) -> tuple[Annotation, bool]:
    """Record a moderator's answer for a leased item. Returns ``(annotation, created)``.

    A label or a skip completes the moderator's lease; a flag for policy review does
    not (the moderator still labels the item). Submitting twice with the same client
    key returns the first annotation. An item of a project the user is not a member of
    is "not found", as if it did not exist.
    """
    if kind not in (Annotation.Kind.LABEL, Annotation.Kind.SKIP, Annotation.Kind.FLAG):
        raise ApplicationError(f"Unknown kind {kind!r}.", extra={"field": "kind"})
    if not client_key or len(client_key) > 64:
        raise ApplicationError("client_key must be 1 to 64 characters.", extra={"field": "client_key"})
    try:
        with transaction.atomic():
            item = (
                QueueItem.objects.select_for_update(of=("self",))
                .select_related("round__project")
                .filter(pk=item_id)
                .first()
            )
            if item is None or not permissions.can_label(user, item.round.project):
                return _first_answer_or(user, client_key, NotFound(f"Queue item {item_id} not found."))
            project = item.round.project
            activity_record(user=user, project=project)
            category = None
            if kind == Annotation.Kind.LABEL:
                category = Category.objects.filter(project=project, key=category_key).first()
                if category is None:
                    raise ApplicationError(
                        f"Unknown category {category_key!r} for project {project.slug!r}.",
                        extra={"field": "category"},
                    )
                if not item.is_gold and item.labels_count >= project.overlap:
                    return _first_answer_or(
                        user, client_key, Conflict("This item already has all its labels.", code="overlap_reached")
                    )
            leases = Assignment.objects.filter(item=item, user=user)
            # A label or a skip completes the open lease in the same statement that finds it.
            held = (
                leases.filter(completed__isnull=True).update(completed=timezone.now())
                if kind != Annotation.Kind.FLAG
                else leases.exists()
            )
            if not held:
                if kind != Annotation.Kind.FLAG and leases.exists():
                    refusal = Conflict(
                        "You already answered this item; undo first to change it.", code="already_answered"
                    )
                else:
                    refusal = Conflict("This item was not handed to you.", code="not_assigned")
                return _first_answer_or(user, client_key, refusal)
            annotation = Annotation.objects.create(
                image_id=item.image_id,
                user=user,
                round=item.round,
                kind=kind,
                category=category,
                time_spent_ms=max(0, int(time_spent_ms)),
                revealed=bool(revealed),
                client_key=client_key,
                note=note[:2000],
            )
            if kind == Annotation.Kind.LABEL:
                item.labels_count += 1
                item.done = not item.is_gold and item.labels_count >= project.overlap
                item.save(update_fields=["labels_count", "done"])
                _after_label(item)
            elif kind == Annotation.Kind.SKIP and _nobody_left_for(item, project):
                item.done = item.skipped = True
                item.save(update_fields=["done", "skipped"])
                _after_label(item)
    except IntegrityError:
        # The client key is taken: a retry that raced its first attempt.
        existing = _by_client_key(user, client_key)
        if existing is None:
            raise
        return existing, False
    return annotation, True


def _first_answer_or(user, client_key: str, refusal: Exception) -> tuple[Annotation, bool]:
    """A retried submission gets its first answer back; anything else is refused.

    Checked only when a submission would be refused, since a retry of an accepted one
    always would be (its lease is complete, or its item full).
    """
    existing = _by_client_key(user, client_key)
    if existing is None:
        raise refusal
    return existing, False


def annotation_undo(*, user, project: Project, client_key: str) -> Annotation | None:
    """Retract the user's most recent label or skip in the project; the item is theirs again.

    Returns the retraction, or None when there is nothing to undo.
    """
    permissions.require(permissions.can_label, user=user, project=project)
    existing = _by_client_key(user, client_key)
    if existing is not None:
        return existing
    with transaction.atomic():
        retracted = Annotation.objects.filter(user=user, kind=Annotation.Kind.RETRACT).values("supersedes_id")
        last = (
            Annotation.objects.filter(
                user=user, image__project=project, kind__in=[Annotation.Kind.LABEL, Annotation.Kind.SKIP]
            )
            .exclude(pk__in=retracted)
            # A correction (a label that supersedes another) is not a queue answer: undo leaves it.
            .exclude(kind=Annotation.Kind.LABEL, supersedes__isnull=False)
            .order_by("-pk")
            .first()
        )
        if last is None:
            return None
        item = QueueItem.objects.select_for_update().filter(round=last.round, image=last.image).first()
        retraction = Annotation.objects.create(
            image=last.image,
            user=user,
            round=last.round,
            kind=Annotation.Kind.RETRACT,
            supersedes=last,
            client_key=client_key,
        )
        activity_record(user=user, project=project)
        if item is not None:
            if last.kind == Annotation.Kind.LABEL and item.labels_count:
                item.labels_count -= 1
            if last.kind == Annotation.Kind.LABEL or item.skipped:
                if item.done:
                    _round_done_changed(project.pk)
                item.done = not item.is_gold and item.labels_count >= project.overlap
                item.skipped = False
                item.save(update_fields=["labels_count", "done", "skipped"])
            Assignment.objects.filter(item=item, user=user).update(
                completed=None, expires=timezone.now() + timedelta(minutes=project.lease_minutes)
            )
            if item.round.status == Round.Status.CLOSED and not item.done:
                Round.objects.filter(pk=item.round_id).update(status=Round.Status.OPEN, closed=None)
    return retraction


def _nobody_left_for(item: QueueItem, project: Project) -> bool:
    """Whether no member of the project can still label ``item``: every one of them has
    had it (labeled or skipped) and no lease is live. An item in that state, short of its
    labels, would hold its round open for ever: it closes as skipped instead."""
    if item.is_gold or item.labels_count >= project.overlap:
        return False
    had = Assignment.objects.filter(item=item)
    if had.filter(completed__isnull=True, expires__gt=timezone.now()).exists():
        return False
    return not project.memberships.exclude(user__in=had.values("user")).exists()


def _by_client_key(user, client_key: str) -> Annotation | None:
    return Annotation.objects.filter(user=user, client_key=client_key).first()


def _after_label(item: QueueItem) -> None:
    """When the label completed the round, queue the retraining chain after commit.

    Labels that finish items take the round's row lock first. Submits lock only their
    item, so without it the last two items, finished at once, would each still see the
    other open and neither would complete the round; with it the second looks after the
    first has committed.
    """
    if not item.done:
        return
    _round_done_changed(item.round.project_id)
    Round.objects.select_for_update().filter(pk=item.round_id).values_list("pk", flat=True).first()
    if _open_items(item.round.project).filter(round=item.round, is_gold=False).exists():
        return
    round_complete(round_id=item.round_id)


def lease_status(*, user, project: Project, open_rounds: tuple[OpenRound, ...] | None = None, membership=None) -> dict:
    """What the labeling page shows beside each item: ``{"progress": ..., "wellbeing": ...}``.

    ``progress``: the open rounds' size and finished items, the user's own labels (in
    all and today). ``wellbeing``: see :func:`labeling.services.wellbeing.wellbeing_status`.
    It comes with every lease, so its counts are read in one query (:func:`_lease_counts`),
    each from an index rather than the round: a round's size is cached (its items are
    written with it, in one transaction), and its finished items are counted from
    whichever side, done or not, is smaller, at most once per ``ROUND_DONE_SECONDS``
    and again as soon as an item of the project is finished or reopened (the count's key
    carries a version that :func:`_round_done_changed` replaces), so the counts never lag
    behind the labels. ``my_labels`` leaves out labels that were undone. ``open_rounds`` and ``membership``: the project's open rounds and
    the user's membership, when the caller has just read them.
    """
    rounds = _open_rounds(project) if open_rounds is None else open_rounds
    round_ids = [r.pk for r in rounds]
    total = sum(_round_size(r.pk, r.created) for r in rounds)
    # With the rounds' creation times, so that an id handed out again after a rollback is a new key.
    rounds_key = ",".join(f"{r.pk}@{r.created.timestamp()}" for r in rounds)
    version = cache.get(_done_version_key(project.pk), "")
    key, mostly_done_key = f"veil:rounds-done:{rounds_key}:{version}", f"veil:rounds-mostly-done:{rounds_key}"
    done = cache.get(key) if round_ids else 0
    mostly_done = bool(round_ids) and cache.get(mostly_done_key, False)
    side = None if done is not None else not mostly_done
    counts = _lease_counts(user=user, project=project, round_ids=round_ids, count_done=side)
    if done is None:
        done = total - counts["side"] if mostly_done else counts["side"]
        # The first count to arrive is what everyone is shown until it expires, so
        # that a count which took longer cannot replace a newer one.
        cache.add(key, done, ROUND_DONE_SECONDS)
        done = cache.get(key, done)
        if mostly_done != (2 * done > total):
            cache.set(mostly_done_key, 2 * done > total, ROUND_SIZE_SECONDS)
    return {
        "progress": {
            "round": rounds[0].number if rounds else None,
            "round_items": total,
            "round_done": done,
            "my_labels": counts["labels"],
            "my_labels_today": counts["labels_today"],
        },
        "wellbeing": wellbeing_status(
            user=user, project=project, sensitive_reveals_today=counts["reveals_today"], membership=membership
        ),
    }


def _done_version_key(project_id: int) -> str:
    return f"veil:rounds-done-version:{project_id}"


def _round_done_changed(project_id: int) -> None:
    """After the transaction commits, make the next :func:`lease_status` count the
    project's finished items again."""
    transaction.on_commit(lambda: cache.set(_done_version_key(project_id), uuid.uuid4().hex, ROUND_SIZE_SECONDS))


def _lease_counts(*, user, project: Project, round_ids: list[int], count_done: bool | None) -> dict[str, int | None]:
    """The counts of :func:`lease_status` in one round trip.

    ``labels`` and ``labels_today``: the user's labels in the project that no undo
    retracted (found through their rounds, which every label has, so that no image row
    is read per label);
    ``reveals_today``: their sensitive reveals since midnight; ``side``: the open
    rounds' items that are done (``count_done``) or not; not counted (None) when
    ``count_done`` is None.
    """
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    annotation, image, reveal, item, round_ = (m._meta.db_table for m in (Annotation, Image, Reveal, QueueItem, Round))
    items, items_params = "SELECT NULL AS n", []
    if count_done is not None:
        in_rounds = ", ".join(["%s"] * len(round_ids)) or "NULL"
        items = f"SELECT COUNT(*) AS n FROM {item} q WHERE q.round_id IN ({in_rounds}) AND q.done = %s"
        items_params = [*round_ids, count_done]
    sql = f"""
        SELECT labels.n, labels.today, reveals.n, items.n FROM
            (SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN a.created >= %s THEN 1 ELSE 0 END), 0) AS today
               FROM {annotation} a
              WHERE a.user_id = %s AND a.kind = %s
                AND a.round_id IN (SELECT id FROM {round_} WHERE project_id = %s)
                AND NOT EXISTS (SELECT 1 FROM {annotation} u WHERE u.supersedes_id = a.id AND u.kind = %s)) labels,
            (SELECT COUNT(*) AS n FROM {reveal} r JOIN {image} i ON i.id = r.image_id
              WHERE r.user_id = %s AND r.sensitive = %s AND r.created >= %s AND i.project_id = %s) reveals,
            ({items}) items
    """
    params = [
        today,
        user.pk,
        Annotation.Kind.LABEL,
        project.pk,
        Annotation.Kind.RETRACT,
        user.pk,
        True,
        today,
        project.pk,
        *items_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        labels, labels_today, reveals_today, side = cursor.fetchone()
    return {"labels": labels, "labels_today": labels_today, "reveals_today": reveals_today, "side": side}


ROUND_SIZE_SECONDS = 600
ROUND_DONE_SECONDS = 2


def _round_size(round_id: int, created) -> int:
    """Items of a round, counted once per ``ROUND_SIZE_SECONDS``.

    A round's items are written with it, in one transaction, and leave only with their
    image, so the count holds unless an image of an open round is deleted. The key
    carries the round's creation time, so an id handed out again after a rollback is a new key.
    """
    key = f"veil:round-size:{round_id}:{created.timestamp()}"
    return cache.get_or_set(key, lambda: QueueItem.objects.filter(round=round_id).count(), ROUND_SIZE_SECONDS)
