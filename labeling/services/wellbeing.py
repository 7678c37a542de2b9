"""Protecting the people who look: reveals are recorded, budgeted and paced.

A reveal is a moderator looking at an unblurred picture. It counts against the daily
budget when the picture may be sensitive: when what Veil knows of its label (a human
label, the active head's prediction, the import's pre-label) names a sensitive
category, or when nothing is known yet.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from labeling import permissions
from labeling.errors import ApplicationError, NotFound
from labeling.models import Annotation, Image, Membership, Prediction, Reveal

STREAK_GAP = timedelta(minutes=10)
MAX_REVEAL_BUDGET = 100_000


class RevealBudgetExhausted(ApplicationError):
    status_code = 429
    default_code = "reveal_budget_exhausted"


def image_possibly_sensitive(image: Image) -> bool:
    project = image.project
    sensitive = set(project.categories.filter(sensitive=True).values_list("pk", flat=True))
    if not sensitive:
        return False
    known = set(
        Annotation.objects.filter(image=image, kind=Annotation.Kind.LABEL).values_list("category_id", flat=True)
    )
    if not known:
        prediction = (
            Prediction.objects.filter(image=image, model_version__is_active=True)
            .values_list("category_id", flat=True)
            .first()
        )
        known = {prediction} if prediction else set()
    for extra in (image.gold_label_id, image.model_label_id, image.source_label_id):
        if not known and extra:
            known = {extra}
    return not known or bool(known & sensitive)


def reveal_budget(*, user, project, used: int | None = None, membership: Membership | None = None) -> dict:
    """Today's sensitive reveals, the moderator's budget and what is left (None: no limit).

    ``used`` and ``membership``: today's sensitive reveals and the user's membership,
    when the caller has read them.
    """
    if membership is None:
        membership = Membership.objects.filter(project=project, user=user).first()
    if used is None:
        start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        used = Reveal.objects.filter(user=user, image__project=project, sensitive=True, created__gte=start).count()
    if membership is None or membership.role == Membership.Role.ADMIN:
        return {"used": used, "budget": None, "remaining": None}
    budget = membership.reveal_budget if membership.reveal_budget is not None else project.daily_sensitive_reveals
    return {"used": used, "budget": budget, "remaining": max(0, budget - used)}


def activity_record(*, user, project, sensitive_reveal: bool = False) -> bool:
    """Extend the user's streak of work by an answer or a reveal, or start a new one.

    A pause longer than ``STREAK_GAP`` since the last activity starts a new streak.
    One UPDATE of the membership row; returns False when the user is not a member.
    """
    now = timezone.now()
    new_streak = Q(last_active__isnull=True) | Q(last_active__lt=now - STREAK_GAP)
    reveals = int(sensitive_reveal)
    return bool(
        Membership.objects.filter(project=project, user=user).update(
            streak_started=Case(When(new_streak, then=Value(now)), default=F("streak_started")),
            streak_sensitive_reveals=Case(
                When(new_streak, then=Value(reveals)), default=F("streak_sensitive_reveals") + reveals
            ),
            last_active=now,
        )
    )


@transaction.atomic
def reveal_record(*, user, image: Image) -> Reveal:
    """Record that ``user``, a member of its project, is shown ``image`` unblurred, within
    their daily budget."""
    permissions.require(permissions.can_reveal, user=user, project=image.project)
    sensitive = image_possibly_sensitive(image)
    if sensitive:
        Membership.objects.select_for_update().filter(project=image.project, user=user).first()
        status = reveal_budget(user=user, project=image.project)
        if status["remaining"] == 0:
            raise RevealBudgetExhausted(
                f"Today's budget of {status['budget']} sensitive reveals is spent; "
                "an admin of the project can raise it.",
                extra={"budget": status["budget"]},
            )
    activity_record(user=user, project=image.project, sensitive_reveal=sensitive)
    return Reveal.objects.create(image=image, user=user, sensitive=sensitive)


def reveal_finish(*, user, reveal_id: int, duration_ms: int) -> Reveal:
    """Record how long a reveal lasted (the moderator released the reveal key)."""
    if not 0 <= duration_ms <= 24 * 3600 * 1000:
        raise ApplicationError("duration_ms must be between 0 and a day.", extra={"field": "duration_ms"})
    if not Reveal.objects.filter(pk=reveal_id, user=user).update(duration_ms=duration_ms):
        raise NotFound(f"Reveal {reveal_id} not found.")
    return Reveal.objects.get(pk=reveal_id)


def reveal_budget_set(*, actor, project, user, budget: int | None) -> Membership:
    """An admin raises (or resets, with None) a moderator's daily reveal budget."""
    permissions.require(permissions.can_manage_project, user=actor, project=project)
    if budget is not None and not 0 <= budget <= MAX_REVEAL_BUDGET:
        raise ApplicationError(f"budget must be between 0 and {MAX_REVEAL_BUDGET}.", extra={"field": "budget"})
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None:
        raise NotFound(f"{user} is not a member of {project.slug}.")
    membership.reveal_budget = budget
    membership.save(update_fields=["reveal_budget"])
    return membership


def wellbeing_status(
    *, user, project, sensitive_reveals_today: int | None = None, membership: Membership | None = None
) -> dict:
    """Budget, the current streak of work and whether a break is due.

    The streak is the run of answers and reveals without a pause longer than
    ``STREAK_GAP`` (see :func:`activity_record`); a break is due once it lasts
    ``break_after_minutes`` or holds ``break_after_sensitive_reveals`` sensitive reveals.
    ``sensitive_reveals_today`` and ``membership``: the user's count and membership,
    when the caller has read them.
    """
    now = timezone.now()
    if membership is None:
        membership = Membership.objects.filter(project=project, user=user).first()
    active = (
        membership is not None and membership.last_active is not None and now - membership.last_active <= STREAK_GAP
    )
    minutes = (now - membership.streak_started).total_seconds() / 60 if active else 0.0
    streak_reveals = membership.streak_sensitive_reveals if active else 0
    return {
        **reveal_budget(user=user, project=project, used=sensitive_reveals_today, membership=membership),
        "streak_minutes": round(minutes, 1),
        "streak_sensitive_reveals": streak_reveals,
        "break_due": minutes >= project.break_after_minutes or streak_reveals >= project.break_after_sensitive_reveals,
    }
