"""Wellbeing: the streak of work, break reminders and the daily budget of sensitive reveals."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from labeling.models import Reveal
from labeling.services.queue import annotation_submit, annotation_undo, queue_next
from labeling.services.rounds import round_start_initial
from labeling.services.wellbeing import RevealBudgetExhausted, reveal_record, wellbeing_status
from tests.labeling.factories import ImageFactory

pytestmark = pytest.mark.django_db


class Clock:
    """``django.utils.timezone.now`` under the test's control (rows' ``created`` included)."""

    def __init__(self, monkeypatch):
        self.at = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.get_current_timezone())
        monkeypatch.setattr(timezone, "now", lambda: self.at)

    def advance(self, minutes: float) -> None:
        self.at += timedelta(minutes=minutes)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture
def image(project):
    return ImageFactory(project=project)


@pytest.fixture
def labeled_by(project):
    """``label(user)``: the user takes the next item and labels it; returns the item's image."""
    ImageFactory.create_batch(30, project=project)
    project.overlap = 1
    project.save()
    round_start_initial(project=project, seed=0)
    keys = iter(range(10_000))

    def label(user):
        lease = queue_next(user=user, project=project)
        annotation_submit(user=user, item_id=lease.item.pk, client_key=f"k{next(keys)}", category_key="neutral")
        return lease.item.image

    return label


def streak(user, project) -> float:
    return wellbeing_status(user=user, project=project)["streak_minutes"]


def test_no_activity_is_no_streak(project, moderator):
    status = wellbeing_status(user=moderator, project=project)
    assert status["streak_minutes"] == 0
    assert status["streak_sensitive_reveals"] == 0
    assert status["break_due"] is False


def test_answers_extend_the_streak_until_a_pause_longer_than_ten_minutes(clock, project, moderator, labeled_by):
    labeled_by(moderator)
    for _ in range(6):
        clock.advance(9)
        labeled_by(moderator)
    assert streak(moderator, project) == 54
    clock.advance(10)
    assert streak(moderator, project) == 64  # still within the gap: the streak goes on
    clock.advance(1)
    assert streak(moderator, project) == 0  # eleven minutes without work: a pause
    labeled_by(moderator)
    clock.advance(3)
    assert streak(moderator, project) == 3


def test_reveals_and_undo_are_work_too(clock, project, moderator, labeled_by, image):
    labeled_by(moderator)
    clock.advance(8)
    reveal_record(user=moderator, image=image)
    clock.advance(8)
    annotation_undo(user=moderator, project=project, client_key="undo-1")
    clock.advance(8)
    assert streak(moderator, project) == 24


def test_streaks_are_per_project(clock, project, moderator, labeled_by):
    from labeling.models import Membership
    from labeling.services.projects import membership_set, project_create

    other = project_create(slug="other", name="Other")
    membership_set(project=other, user=moderator, role=Membership.Role.MODERATOR)
    labeled_by(moderator)
    clock.advance(5)
    assert streak(moderator, project) == 5
    assert streak(moderator, other) == 0


def test_a_break_is_due_after_the_minutes_or_the_sensitive_reveals(clock, project, moderator, labeled_by, image):
    project.break_after_minutes = 20
    project.break_after_sensitive_reveals = 3
    project.save()
    labeled_by(moderator)
    clock.advance(5)
    reveal_record(user=moderator, image=image)  # nothing is known of the image: possibly sensitive
    clock.advance(5)
    reveal_record(user=moderator, image=image)
    status = wellbeing_status(user=moderator, project=project)
    assert (status["streak_sensitive_reveals"], status["break_due"]) == (2, False)

    # A reveal of an image labeled neutral (not sensitive) does not count.
    neutral = labeled_by(moderator)
    reveal_record(user=moderator, image=neutral)
    assert wellbeing_status(user=moderator, project=project)["streak_sensitive_reveals"] == 2

    clock.advance(1)
    reveal_record(user=moderator, image=image)
    status = wellbeing_status(user=moderator, project=project)
    assert (status["streak_sensitive_reveals"], status["break_due"]) == (3, True)

    # After a pause the count starts again, and time alone makes a break due.
    clock.advance(30)
    assert wellbeing_status(user=moderator, project=project)["break_due"] is False
    labeled_by(moderator)
    assert wellbeing_status(user=moderator, project=project)["streak_sensitive_reveals"] == 0
    for _ in range(4):
        clock.advance(5)
        labeled_by(moderator)
    status = wellbeing_status(user=moderator, project=project)
    assert (status["streak_minutes"], status["break_due"]) == (20, True)


def test_the_daily_budget_counts_todays_sensitive_reveals_only(clock, project, moderator, image):
    project.daily_sensitive_reveals = 2
    project.save()
    reveal_record(user=moderator, image=image)
    clock.advance(24 * 60)  # the next day
    status = wellbeing_status(user=moderator, project=project)
    assert (status["used"], status["budget"], status["remaining"]) == (0, 2, 2)

    reveal_record(user=moderator, image=image)
    reveal_record(user=moderator, image=image)
    status = wellbeing_status(user=moderator, project=project)
    assert (status["used"], status["remaining"]) == (2, 0)
    with pytest.raises(RevealBudgetExhausted):
        reveal_record(user=moderator, image=image)
    assert Reveal.objects.filter(user=moderator, sensitive=True).count() == 3


def test_admins_have_no_reveal_budget(project, admin_user, image):
    reveal_record(user=admin_user, image=image)
    status = wellbeing_status(user=admin_user, project=project)
    assert (status["used"], status["budget"], status["remaining"]) == (1, None, None)


def test_a_lease_reports_the_streak_of_the_moderator_who_asks(clock, api, project, moderator, make_user, labeled_by):
    """Over the API too, also for a superuser who labels as a member of the project."""
    from django.urls import reverse

    from labeling.models import Membership
    from labeling.services.projects import membership_set

    root = make_user("root", is_superuser=True)
    membership_set(project=project, user=root, role=Membership.Role.MODERATOR)
    for user in (moderator, root):
        labeled_by(user)
    clock.advance(5)
    for user in (moderator, root):
        lease = api(user).post(reverse("api-queue-next", args=[project.slug])).json()
        assert lease["wellbeing"]["streak_minutes"] == 5
        assert lease["progress"]["my_labels"] == 1
