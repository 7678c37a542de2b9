"""The item browser and the item page in a real browser: filter, open, reveal, correct."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Annotation, Membership, Reveal
from labeling.selectors.labels import final_labels_of
from labeling.services.projects import membership_set
from labeling.services.queue import annotation_submit, queue_next
from tests.browser.conftest import PASSWORD, eventually, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def labeled(labeling):
    """The moderator labels two of the four images "violence" and one "drugs"; an admin joins."""
    project, moderator, _ = labeling
    answers = ["violence", "violence", "drugs"]
    for key in answers:
        lease = queue_next(user=moderator, project=project)
        annotation_submit(
            user=moderator, item_id=lease.item.pk, client_key=f"b-{key}-{lease.item.pk}", category_key=key
        )
    admin = get_user_model().objects.create_user(username="chief", password=PASSWORD)
    membership_set(project=project, user=admin, role=Membership.Role.ADMIN)
    return project, moderator, admin


def test_filter_open_reveal_and_correct_a_past_label(page, labeled):
    project, moderator, admin = labeled
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, username=admin.username, next_url=reverse("project-detail", args=[project.slug]))

    page.locator('.project-nav a[data-page="project-items"]').click()
    page.wait_for_url(f"**{reverse('project-items', args=[project.slug])}")
    expect(page.locator("tr.item")).to_have_count(4)
    page.get_by_label("Final label").select_option("violence")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**label=violence**")
    rows = page.locator("tr.item")
    expect(rows).to_have_count(2)
    expect(rows.locator(".final-label")).to_have_text(["violence", "violence"])
    # Only blurred previews in the list: nothing unblurred was asked for.
    assert rows.first.locator("img").get_attribute("src").endswith("/blurred/")
    assert not [url for url in requested if "/original/" in url or "/thumbnail/" in url]

    image_id = int(rows.first.get_attribute("data-image-id"))
    rows.first.get_by_role("link", name=str(image_id), exact=True).click()
    page.wait_for_url(f"**{reverse('project-item', args=[project.slug, image_id])}")
    stage = page.locator("#stage")
    expect(stage).to_have_attribute("data-mode", "blurred")
    expect(page.locator("#final-label")).to_have_attribute("data-label", "violence")
    assert not Reveal.objects.exists()

    # Holding Space reveals the original through the audited image view; releasing hides it.
    page.keyboard.down("Space")
    expect(stage).to_have_attribute("data-mode", "original")
    assert page.locator("#view-original").get_attribute("src").startswith("blob:")
    page.keyboard.up("Space")
    expect(stage).to_have_attribute("data-mode", "blurred")
    reveal = eventually(lambda: Reveal.objects.filter(image_id=image_id, duration_ms__isnull=False).first())
    assert reveal is not None and reveal.user == admin

    # Correct the moderator's label: a new annotation supersedes it, and the final label follows.
    old = Annotation.objects.get(image_id=image_id, user=moderator, kind="label")
    row = page.locator(f'tr.annotation[data-annotation-id="{old.pk}"]')
    row.get_by_label(f"Correct annotation {old.pk} to").select_option("drugs")
    row.get_by_role("button", name="Correct").click()
    expect(page.locator("#final-label")).to_have_attribute("data-label", "drugs")
    expect(page.locator(f'tr.annotation[data-annotation-id="{old.pk}"]')).to_have_class("annotation superseded")
    correction = Annotation.objects.get(supersedes=old)
    assert (correction.user, correction.category.key) == (admin, "drugs")
    assert Annotation.objects.get(pk=old.pk).category.key == "violence"
    final = final_labels_of(project=project, image_ids=[image_id])[image_id]
    assert (final.category.key, final.annotators) == ("drugs", 1)

    # The browser's label filter agrees.
    page.goto(reverse("project-items", args=[project.slug]) + "?label=violence")
    expect(page.locator("tr.item")).to_have_count(1)


def test_a_moderator_sees_and_corrects_only_their_own_label(page, labeled):
    project, moderator, admin = labeled
    mine = Annotation.objects.filter(user=moderator, kind="label").order_by("pk").first()
    url = reverse("project-item", args=[project.slug, mine.image_id])
    sign_in(page, username=moderator.username, next_url=url)
    expect(page.locator("tr.annotation")).to_have_count(1)
    expect(page.locator("#adjudications")).to_have_count(0)
    page.get_by_label(f"Correct annotation {mine.pk} to").select_option("neutral")
    page.get_by_role("button", name="Correct").click()
    correction = eventually(lambda: Annotation.objects.filter(supersedes=mine).first())
    assert correction is not None and correction.category.key == "neutral" and correction.user == moderator
    expect(page.locator(f'tr.annotation[data-annotation-id="{correction.pk}"]')).to_have_count(1)
    assert final_labels_of(project=project, image_ids=[mine.image_id])[mine.image_id].category.key == "neutral"
