"""Review that can see, in a real browser: a moderator's flag with a note reaches the
admins' flag queue and is resolved by a relabel; on the review page an admin reveals the
image they decide on (recorded), zooms and pans it, and must choose the final label, and
exports the labels and downloads them."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Adjudication, Annotation, FlagResolution, Membership, Reveal
from labeling.selectors.labels import final_labels_of
from labeling.services.projects import membership_set
from labeling.services.queue import annotation_submit, queue_next
from tests.browser.conftest import PASSWORD, eventually, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def make_member(project, username: str, role: str):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    membership_set(project=project, user=user, role=role)
    return user


@pytest.fixture
def admin_page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 860})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_a_flag_with_a_note_reaches_the_queue_and_is_resolved_by_relabel(page, admin_page, labeling):
    project, moderator, _ = labeling
    admin = make_member(project, "lead", Membership.Role.ADMIN)

    sign_in(page, username=moderator.username, next_url=reverse("label", args=[project.slug]))
    expect(page.locator("#stage")).to_have_attribute("data-mode", "blurred")
    image_id = int(page.locator("#stage").get_attribute("data-image-id"))
    page.get_by_role("button", name="Flag for policy review").click()
    page.get_by_label("Note for the policy reviewers").fill("Toy gun or a real one?")
    page.get_by_role("button", name="Send flag").click()
    expect(page.locator("#status")).to_contain_text("Flagged for policy review")
    flag = Annotation.objects.get(kind="flag")
    assert (flag.image_id, flag.user, flag.note) == (image_id, moderator, "Toy gun or a real one?")
    page.keyboard.press("1")
    first = project.categories.order_by("order")[0]
    assert eventually(lambda: Annotation.objects.filter(kind="label", image_id=image_id).exists())

    queue_url = reverse("project-flags", args=[project.slug])
    sign_in(admin_page, username=admin.username, next_url=queue_url)
    row = admin_page.locator(f'tr[data-image-id="{image_id}"]')
    expect(row).to_contain_text("Toy gun or a real one?")
    expect(row).to_contain_text(moderator.username)
    expect(row.locator(".final-label")).to_contain_text(first.name)
    thumb = row.get_by_role("img", name=f"image {image_id}")
    assert thumb.get_attribute("src") == reverse("image-file", args=[image_id, "blurred"])

    row.get_by_label("Relabel").check()
    row.get_by_label("Category").select_option("weapons")
    row.get_by_label("Note").fill("Replicas that look real count as weapons.")
    row.get_by_role("button", name="Resolve").click()
    expect(admin_page.locator(".message")).to_contain_text(f"Flags on image {image_id} relabeled.")
    expect(admin_page.locator(f'tr[data-image-id="{image_id}"]')).to_have_count(0)
    expect(admin_page.locator("#flag-resolutions")).to_contain_text("Replicas that look real count as weapons.")

    resolution = FlagResolution.objects.get()
    assert (resolution.image_id, resolution.action, resolution.resolved_by, resolution.flag) == (
        image_id,
        "relabel",
        admin,
        flag,
    )
    decision = Adjudication.objects.get(image_id=image_id)
    assert resolution.adjudication == decision and decision.reason == "Replicas that look real count as weapons."
    assert final_labels_of(project=project, image_ids=[image_id])[image_id].category.key == "weapons"


def test_the_admin_reveals_zooms_pans_and_must_choose_the_final_label(page, labeling):
    project, moderator, _ = labeling
    admin = make_member(project, "lead", Membership.Role.ADMIN)
    second = make_member(project, "second", Membership.Role.MODERATOR)
    project.overlap = 2
    project.save(update_fields=["overlap"])
    lease = queue_next(user=moderator, project=project)
    annotation_submit(user=moderator, item_id=lease.item.pk, client_key="a", category_key="violence")
    other = queue_next(user=second, project=project)
    assert other.item == lease.item
    annotation_submit(user=second, item_id=other.item.pk, client_key="b", category_key="neutral")
    image_id = lease.item.image_id

    sign_in(page, username=admin.username, next_url=reverse("project-review", args=[project.slug]))
    row = page.locator(f'#disagreements tr[data-image-id="{image_id}"]')
    select = row.get_by_label("final label")
    expect(select).to_have_value("")

    # The viewer opens blurred; nothing unblurred is fetched until the admin reveals.
    row.get_by_role("button", name="Look").click()
    viewer = page.get_by_role("dialog")
    stage = viewer.locator("#viewer-stage")
    expect(stage).to_have_attribute("data-mode", "blurred")
    picture = viewer.locator("#viewer-picture")
    assert picture.get_attribute("src") == reverse("image-file", args=[image_id, "blurred"])
    expect(viewer.get_by_role("button", name="Zoom in")).to_be_disabled()
    assert not Reveal.objects.exists()
    viewer.get_by_role("button", name="Sketch").click()
    expect(stage).to_have_attribute("data-mode", "sketch")
    assert picture.get_attribute("src") == reverse("image-file", args=[image_id, "sketch"])
    assert not Reveal.objects.exists()

    viewer.get_by_role("button", name="Reveal original").click()
    expect(stage).to_have_attribute("data-mode", "original")
    assert picture.get_attribute("src").startswith("blob:")
    reveal = Reveal.objects.get()
    assert (reveal.user, reveal.image_id) == (admin, image_id)

    # Zoom with the button and the wheel, then drag to pan.
    viewer.get_by_role("button", name="Zoom in").click()
    expect(viewer.locator("#viewer-zoom")).to_have_text("150%")
    box = stage.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -100)
    expect(viewer.locator("#viewer-zoom")).to_have_text("188%")
    before = picture.evaluate("img => img.style.transform")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2 + 30, steps=5)
    page.mouse.up()
    after = picture.evaluate("img => img.style.transform")
    assert after != before and "translate(" in after and "scale(1.875)" in after
    viewer.get_by_role("button", name="Fit").click()
    expect(viewer.locator("#viewer-zoom")).to_have_text("fit")

    # Closing hides the original and records how long it was shown.
    viewer.get_by_role("button", name="Close").click()
    expect(viewer).to_be_hidden()
    assert eventually(lambda: Reveal.objects.filter(pk=reveal.pk, duration_ms__isnull=False).exists())

    # A submit without a chosen category is refused, naming the field.
    row.get_by_label("reason").fill("Both answers are wrong.")
    row.get_by_role("button", name="Decide").click()
    expect(page.locator(".message.error")).to_contain_text("category is required")
    assert not Adjudication.objects.exists()
    row = page.locator(f'#disagreements tr[data-image-id="{image_id}"]')
    row.get_by_label("final label").select_option("weapons")
    row.get_by_label("reason").fill("A replica rifle.")
    row.get_by_role("button", name="Decide").click()
    expect(page.locator(".message").first).to_contain_text(f"Image {image_id} adjudicated.")
    decision = Adjudication.objects.get()
    assert (decision.image_id, decision.category.key, decision.decided_by) == (image_id, "weapons", admin)


def test_the_admin_exports_from_the_review_page_and_downloads_the_labels(admin_page, labeling):
    project, moderator, _ = labeling
    admin = make_member(project, "lead", Membership.Role.ADMIN)
    labeled = []
    for key in ("violence", "neutral"):
        lease = queue_next(user=moderator, project=project)
        annotation_submit(user=moderator, item_id=lease.item.pk, client_key=f"export-{key}", category_key=key)
        labeled.append((lease.item.image_id, key))

    sign_in(admin_page, username=admin.username, next_url=reverse("project-review", args=[project.slug]))
    exports = admin_page.locator("#exports")
    exports.get_by_label("Format").select_option("jsonl")
    exports.get_by_label("human consensus").check()
    exports.get_by_role("button", name="Export").click()
    expect(admin_page.locator(".message")).to_contain_text("queued")
    row = admin_page.locator("#exports tr.job").first
    expect(row.locator(".job-status")).to_have_text("succeeded")
    with admin_page.expect_download() as download:
        row.get_by_role("link", name="download").click()
    lines = download.value.path().read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert sorted((r["image_id"], r["label"], r["label_source"]) for r in rows) == sorted(
        (image_id, key, "consensus") for image_id, key in labeled
    )
