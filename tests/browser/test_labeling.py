"""The labeling page in a real browser: blurred first, reveal on Space, hotkeys, wellbeing."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image as PILImage
from playwright.sync_api import expect

from labeling.models import Annotation, QueueItem, Reveal
from tests.browser.conftest import eventually, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHA256_OF_BLOB = """async (url) => {
  const bytes = await (await fetch(url)).arrayBuffer();
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}"""


def label_url(project) -> str:
    return reverse("label", args=[project.slug])


def shown_item(page) -> QueueItem:
    item_id = page.locator("#stage").get_attribute("data-item-id")
    return QueueItem.objects.select_related("image").get(pk=int(item_id))


def stored(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def wait_for_other_item(page, item_id: int) -> None:
    expect(page.locator("#stage")).not_to_have_attribute("data-item-id", str(item_id))
    expect(page.locator("#stage")).to_have_attribute("data-mode", "blurred")


def test_blurred_first_reveal_while_space_is_held_label_with_2_and_undo(page, labeling):
    project, moderator, _ = labeling
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    with page.expect_response(lambda r: "/blurred/" in r.url and r.status == 200) as blurred_response:
        sign_in(page, username=moderator.username, next_url=label_url(project))
    stage = page.locator("#stage")
    expect(stage).to_have_attribute("data-mode", "blurred")
    item = shown_item(page)
    image = item.image

    # What the page shows is the stored blurred derivative, small and blurred further by CSS.
    blurred = page.locator("#view-blurred")
    assert blurred.get_attribute("src") == reverse("image-file", args=[image.pk, "blurred"])
    assert blurred_response.value.url.endswith(blurred.get_attribute("src"))
    assert blurred_response.value.body() == stored(image.blurred)
    natural = blurred.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert tuple(natural) == PILImage.open(io.BytesIO(stored(image.blurred))).size
    assert max(natural) <= 64, "the stored preview is tiny; the page scales it up"
    assert "blur(24px)" in blurred.evaluate("img => getComputedStyle(img).filter")
    box = stage.bounding_box()
    assert box["width"] / box["height"] == pytest.approx(image.width / image.height, rel=0.02)
    expect(page.locator("#view-original")).to_be_hidden()
    assert not [url for url in requested if "/original/" in url]
    assert not Reveal.objects.exists()
    expect(page.locator('[data-progress="round_items"]')).to_have_text("4")

    # Holding Space shows the original; releasing hides it and records how long it lasted.
    page.keyboard.down("Space")
    expect(stage).to_have_attribute("data-mode", "original")
    original = page.locator("#view-original")
    expect(original).to_be_visible()
    src = original.get_attribute("src")
    assert src.startswith("blob:")
    assert page.evaluate(SHA256_OF_BLOB, src) == hashlib.sha256(stored(image.original)).hexdigest()
    page.wait_for_timeout(400)
    page.keyboard.up("Space")
    expect(stage).to_have_attribute("data-mode", "blurred")
    expect(original).not_to_have_attribute("src", src)
    assert len([url for url in requested if "/original/" in url]) == 1
    reveal = eventually(lambda: Reveal.objects.filter(duration_ms__isnull=False).first())
    assert reveal is not None, "the reveal's duration was recorded after release"
    assert (reveal.user, reveal.image) == (moderator, image)
    assert 300 <= reveal.duration_ms < 10_000

    # "2" labels with the second category; the next image arrives, blurred.
    second = project.categories.order_by("order")[1]
    page.keyboard.press("2")
    wait_for_other_item(page, item.pk)
    label = Annotation.objects.get(image=image, kind="label")
    assert (label.user, label.category) == (moderator, second)
    assert label.revealed is True and label.time_spent_ms > 300
    expect(page.locator("#status")).to_have_text(f"Labeled “{second.name}”.")
    expect(page.locator('[data-progress="my_labels"]')).to_have_text("1")
    next_item = shown_item(page)
    assert page.locator("#view-blurred").get_attribute("src") == reverse(
        "image-file", args=[next_item.image_id, "blurred"]
    )

    # "u" retracts the label and brings the previous item back.
    page.keyboard.press("u")
    expect(stage).to_have_attribute("data-item-id", str(item.pk))
    expect(stage).to_have_attribute("data-mode", "blurred")
    retraction = Annotation.objects.get(kind="retract")
    assert retraction.supersedes == label and retraction.user == moderator
    assert QueueItem.objects.get(pk=item.pk).labels_count == 0
    assert len([url for url in requested if "/original/" in url]) == 1, "no reveal without Space"


def test_guidelines_on_question_mark_and_hover_greyscale_sketch_and_saved_defaults(page, labeling):
    project, moderator, membership = labeling
    sign_in(page, username=moderator.username, next_url=label_url(project))
    stage = page.locator("#stage")
    expect(stage).to_have_attribute("data-mode", "blurred")

    guidelines = page.locator("#guidelines")
    expect(guidelines).to_be_hidden()
    page.keyboard.press("?")
    expect(guidelines).to_be_visible()
    for category in project.categories.all():
        expect(guidelines.locator(f'[data-guideline="{category.key}"]')).to_contain_text(category.guideline)
    page.keyboard.press("Escape")
    expect(guidelines).to_be_hidden()

    first = project.categories.order_by("order")[0]
    tip = page.locator(f"#guide-{first.key}")
    expect(tip).to_be_hidden()
    page.get_by_role("button", name=first.name).hover()
    expect(tip).to_be_visible()
    expect(tip).to_have_text(first.guideline)

    page.keyboard.press("g")
    expect(stage).to_have_class("stage greyscale")
    assert stage.evaluate("el => getComputedStyle(el).filter") == "grayscale(1)"
    expect(page.get_by_role("button", name="Greyscale")).to_have_attribute("aria-pressed", "true")

    with page.expect_response(lambda r: "/sketch/" in r.url) as sketch_response:
        page.keyboard.press("k")
    expect(stage).to_have_attribute("data-mode", "sketch")
    expect(page.locator("#view-sketch")).to_be_visible()
    assert sketch_response.value.body() == stored(shown_item(page).image.sketch)
    page.keyboard.press("k")
    expect(stage).to_have_attribute("data-mode", "blurred")

    # Lighter blur and greyscale, saved as the moderator's defaults for the next visit.
    page.get_by_text("Display defaults").click()
    page.locator("#blur-strength").evaluate("el => { el.value = 10; el.dispatchEvent(new Event('input')); }")
    assert "blur(10px)" in page.locator("#view-blurred").evaluate("img => getComputedStyle(img).filter")
    expect(page.get_by_label("Greyscale")).to_be_checked()
    page.get_by_role("button", name="Save as my defaults").click()
    expect(page.locator("#status")).to_have_text("Display defaults saved.")
    membership.refresh_from_db()
    assert (membership.blur_strength, membership.greyscale) == (10, True)
    page.reload()
    expect(stage).to_have_attribute("data-mode", "blurred")
    expect(stage).to_have_class("stage greyscale")
    assert "blur(10px)" in page.locator("#view-blurred").evaluate("img => getComputedStyle(img).filter")
    assert not Reveal.objects.exists() and not Annotation.objects.exists()


def test_a_lost_answer_is_sent_again_with_the_same_client_key(page, labeling):
    project, moderator, _ = labeling
    sign_in(page, username=moderator.username, next_url=label_url(project))
    expect(page.locator("#stage")).to_have_attribute("data-mode", "blurred")
    item = shown_item(page)
    sent = []

    def lose_the_first_answer(route):
        sent.append(route.request.post_data_json)
        if len(sent) == 1:
            route.fetch()  # the server records it, and the answer never comes back
            route.abort()
        else:
            route.continue_()

    page.route("**/api/queue/items/*/submit/", lose_the_first_answer)
    page.keyboard.press("4")
    wait_for_other_item(page, item.pk)
    assert len(sent) == 2 and sent[0] == sent[1], "retried with the same body and client_key"
    label = Annotation.objects.get()
    assert (label.image_id, label.category.key, label.client_key) == (item.image_id, "neutral", sent[0]["client_key"])


def test_s_skips_and_f_flags(page, labeling):
    project, moderator, _ = labeling
    sign_in(page, username=moderator.username, next_url=label_url(project))
    expect(page.locator("#stage")).to_have_attribute("data-mode", "blurred")
    item = shown_item(page)

    page.keyboard.press("f")
    expect(page.locator("#status")).to_contain_text("Flagged for policy review")
    expect(page.get_by_role("button", name="Flag for policy review")).to_have_attribute("aria-pressed", "true")
    flag = Annotation.objects.get(kind="flag")
    assert (flag.image_id, flag.user) == (item.image_id, moderator)
    expect(page.locator("#stage")).to_have_attribute("data-item-id", str(item.pk))

    page.keyboard.press("s")
    wait_for_other_item(page, item.pk)
    skip = Annotation.objects.get(kind="skip")
    assert (skip.image_id, skip.revealed) == (item.image_id, False)
    assert QueueItem.objects.get(pk=item.pk).labels_count == 0
    expect(page.get_by_role("button", name="Flag for policy review")).to_have_attribute("aria-pressed", "false")


def test_a_spent_budget_shows_a_message_and_the_sketch_still_works(page, labeling):
    project, moderator, membership = labeling
    membership.reveal_budget = 0
    membership.save()
    sign_in(page, username=moderator.username, next_url=label_url(project))
    stage = page.locator("#stage")
    expect(stage).to_have_attribute("data-mode", "blurred")
    expect(page.locator('[data-wellbeing="budget"]')).to_have_text("0")

    page.keyboard.down("Space")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("budget of 0 sensitive reveals is spent")
    expect(alert).to_contain_text("sketch view (K) is still available")
    page.keyboard.up("Space")
    expect(stage).to_have_attribute("data-mode", "blurred")
    expect(page.locator("#view-original")).not_to_have_attribute("src", "blob:")
    assert not Reveal.objects.exists()

    page.keyboard.press("k")
    expect(stage).to_have_attribute("data-mode", "sketch")
    expect(page.locator("#view-sketch")).to_be_visible()
    # The first request for a sketch draws it on the server; wait until it has arrived.
    page.wait_for_function(
        "() => { const img = document.querySelector('#view-sketch'); return img.complete && img.naturalWidth > 0; }",
        timeout=15_000,
    )


def test_the_break_reminder_comes_after_sensitive_reveals_and_holds_the_keys_until_dismissed(page, labeling):
    project, moderator, _ = labeling
    project.break_after_sensitive_reveals = 1
    project.save()
    sign_in(page, username=moderator.username, next_url=label_url(project))
    stage = page.locator("#stage")
    dialog = page.get_by_role("dialog", name="Time for a break")
    expect(stage).to_have_attribute("data-mode", "blurred")
    expect(dialog).to_be_hidden()

    first = shown_item(page)
    page.keyboard.press("2")
    wait_for_other_item(page, first.pk)
    second = shown_item(page)
    page.keyboard.down("Space")
    expect(stage).to_have_attribute("data-mode", "original")
    page.keyboard.up("Space")
    expect(stage).to_have_attribute("data-mode", "blurred")
    page.keyboard.press("2")
    wait_for_other_item(page, second.pk)

    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("You have revealed 1 possibly sensitive image.")
    # A key pressed in the moment the reminder appears neither answers, reveals nor dismisses.
    for key in ("3", "s", "Space", "Enter"):
        page.keyboard.press(key)
    page.wait_for_timeout(300)
    expect(dialog).to_be_visible()
    assert Annotation.objects.count() == 2 and Reveal.objects.count() == 1

    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Continue labeling")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    third = shown_item(page)
    page.keyboard.press("2")
    wait_for_other_item(page, third.pk)
    # Dismissed: not shown again until another round of reveals or minutes.
    expect(dialog).to_be_hidden()
    assert Annotation.objects.filter(kind="label").count() == 3


def test_text_read_in_the_image_is_shown_without_revealing_it(page, labeling):
    from labeling.models import Image as ImageRow

    project, moderator, _ = labeling
    ImageRow.objects.filter(project=project).update(ocr_text="")
    first = ImageRow.objects.filter(project=project).order_by("pk").first()
    ImageRow.objects.filter(pk=first.pk).update(ocr_text="THEY ARE NOT WELCOME HERE")
    sign_in(page, username=moderator.username, next_url=label_url(project))
    expect(page.locator("#stage")).to_have_attribute("data-mode", "blurred")
    for _ in range(4):
        item = shown_item(page)
        if item.image_id == first.pk:
            expect(page.locator("#image-text")).to_be_visible()
            expect(page.locator("#image-text-value")).to_have_text("THEY ARE NOT WELCOME HERE")
            assert not Reveal.objects.exists()
            return
        expect(page.locator("#image-text")).to_be_hidden()
        page.keyboard.press("s")
        wait_for_other_item(page, item.pk)
    pytest.fail("the captioned image was never handed out")


def test_counters_follow_labels_and_undo_and_a_new_round_shows_by_itself(page, labeling, tmp_path):
    from django.contrib.auth import get_user_model

    from labeling.models import Image, Membership, Round
    from labeling.services.ingest import import_job_create, import_job_run
    from labeling.services.projects import membership_set
    from labeling.services.queue import queue_next
    from tests import imagefiles

    project, moderator, _ = labeling
    counter = page.locator
    sign_in(page, username=moderator.username, next_url=label_url(project))
    expect(page.locator("#stage")).to_have_attribute("data-mode", "blurred")
    expect(counter('[data-progress="round_done"]')).to_have_text("0")
    # A second moderator holds one of the four items, so the page runs out after three.
    other = get_user_model().objects.create_user(username="other", password="pw-other")
    membership_set(project=project, user=other, role=Membership.Role.MODERATOR)
    assert queue_next(user=other, project=project) is not None

    first = shown_item(page)
    page.keyboard.press("1")
    wait_for_other_item(page, first.pk)
    expect(counter('[data-progress="round_done"]')).to_have_text("1")
    expect(counter('[data-progress="my_labels"]')).to_have_text("1")

    page.keyboard.press("u")
    expect(page.locator("#stage")).to_have_attribute("data-item-id", str(first.pk))
    expect(counter('[data-progress="my_labels"]')).to_have_text("0")
    expect(counter('[data-progress="my_labels_today"]')).to_have_text("0")
    expect(counter('[data-progress="round_done"]')).to_have_text("0")

    for done in ("1", "2"):
        item = shown_item(page)
        page.keyboard.press("1")
        wait_for_other_item(page, item.pk)
        expect(counter('[data-progress="round_done"]')).to_have_text(done)
    page.keyboard.press("1")
    expect(page.locator("#empty")).to_be_visible()
    expect(counter('[data-progress="round_done"]')).to_have_text("3")
    expect(counter('[data-progress="my_labels"]')).to_have_text("3")

    # A new round opens while the page says there is nothing left: it shows its item by itself.
    incoming = tmp_path / "round-1"
    incoming.mkdir()
    (incoming / "new.jpg").write_bytes(imagefiles.jpeg_bytes(77))
    job = import_job_create(project=project, paths=[str(incoming)], source="browser-test")
    assert import_job_run(job_id=job.pk, workers=1).counts["accepted"] == 1
    image = Image.objects.get(project=project, name__endswith="new.jpg")
    round_one = Round.objects.create(project=project, number=1, strategy="random")
    fresh = QueueItem.objects.create(round=round_one, image=image, priority=1.0)
    expect(page.locator("#stage")).to_have_attribute("data-item-id", str(fresh.pk), timeout=15_000)
    expect(page.locator("#empty")).to_be_hidden()
    expect(counter('[data-progress="round_items"]')).to_have_text("5")
