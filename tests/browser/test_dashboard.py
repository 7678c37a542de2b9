"""The admins' dashboard in a real browser: sign in, retrain, see the new round and its
metrics, and preview a point of the embedding map through its blurred derivative only."""

from __future__ import annotations

import re
import uuid

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import ImageFilter
from playwright.sync_api import expect

from labeling.models import Job, Membership, ModelVersion, Round
from tests import imagefiles
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEYS = ["violence", "drugs", "neutral"]
ADMIN_PASSWORD = "pw-admin-dashboard"


@pytest.fixture
def labeled_round(transactional_db):
    """Round 0 of an embedded pool, labeled but for three items, and its admin.

    The images' blurred derivatives are real files so the map's preview can load them.
    """
    from django.contrib.auth import get_user_model

    from labeling.services.projects import membership_set, project_create
    from labeling.services.queue import annotation_submit, queue_next
    from labeling.services.rounds import round_start_initial
    from tests.labeling.factories import embedded_pool

    project = project_create(
        slug="policy", name="Policy review", overlap=1, batch_size=12, eval_fraction=0.25, gold_rate=0.0
    )
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 40)
    vectors = (rng.normal(size=(3, 16)) * 4)[truth] + rng.normal(size=(120, 16))
    _, images = embedded_pool(project, vectors)
    for i, image in enumerate(images):
        picture = imagefiles.photo(i, (96, 72)).filter(ImageFilter.GaussianBlur(6))
        default_storage.save(image.blurred, ContentFile(imagefiles.encode(picture, "JPEG", quality=70)))
    labels = {image.pk: KEYS[t] for image, t in zip(images, truth, strict=True)}

    users = get_user_model().objects
    admin = users.create_user(username="admin", password=ADMIN_PASSWORD)
    membership_set(project=project, user=admin, role=Membership.Role.ADMIN)
    moderator = users.create_user(username="mod", password="pw-mod")
    membership_set(project=project, user=moderator, role=Membership.Role.MODERATOR)

    round_ = round_start_initial(project=project)
    while round_.items.filter(done=False).count() > 3:
        lease = queue_next(user=moderator, project=project)
        annotation_submit(
            user=moderator,
            item_id=lease.item.pk,
            client_key=uuid.uuid4().hex,
            category_key=labels[lease.item.image_id],
            time_spent_ms=2500,
        )
    assert not Job.objects.exists()
    return project, admin


def test_admin_retrains_from_the_dashboard_and_sees_round_1_with_its_metrics(page, labeled_round, tmp_path):
    project, admin = labeled_round
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    url = reverse("project-dashboard", args=[project.slug])

    sign_in(page, username=admin.username, password=ADMIN_PASSWORD, next_url=url)
    expect(page.locator('tr.round[data-round="0"]')).to_be_visible()
    expect(page.locator('tr.round[data-round="1"]')).to_have_count(0)
    expect(page.locator("#head-accuracy")).to_have_text("–")

    page.get_by_role("button", name="Retrain now").click()
    expect(page.locator('tr.round[data-round="1"]')).to_be_visible(timeout=30_000)
    job = Job.objects.get(kind="retrain")
    expect(page.get_by_role("status")).to_contain_text(f"Retrain job #{job.pk}")

    head = ModelVersion.objects.get(kind="head", is_active=True)
    accuracy = f"{head.metrics['accuracy']:.3f}"
    expect(page.locator('tr.round[data-round="0"] [data-metric="accuracy"]')).to_have_text(accuracy)
    expect(page.locator("#head-accuracy")).to_have_text(accuracy)
    per_class = page.locator('tr.per-class-row[data-round="0"] table.per-class')
    expect(per_class).to_be_visible()
    expect(per_class.locator("tbody tr")).to_have_count(len(KEYS))
    assert Round.objects.get(project=project, number=1).items.count() == 12
    expect(page.locator("#learning-curve g.series[data-name='accuracy'] circle.point")).to_have_count(1)
    expect(page.locator("#pr-curves g.series")).to_have_count(len(KEYS))
    expect(page.locator(f"#jobs tr.job[data-job-id='{job.pk}'] .job-status")).to_have_text("succeeded")

    point = page.locator("#embedding-map circle.point").last
    expect(point).to_have_attribute("data-source", "consensus")
    image_id = point.get_attribute("data-image-id")
    with page.expect_response(lambda r: r.url.endswith(f"/images/{image_id}/blurred/")) as response:
        point.hover()
    assert response.value.status == 200
    preview = page.locator("#map-preview img")
    expect(preview).to_be_visible()
    assert preview.get_attribute("src") == reverse("image-file", args=[int(image_id), "blurred"])
    page.wait_for_function("() => document.querySelector('#map-preview img').naturalWidth > 0")
    expect(page.locator("#map-preview .preview-caption")).to_contain_text(f"Image {image_id}")
    assert not [u for u in requested if re.search(r"/images/\d+/(original|thumbnail)/", u)]

    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_moderators_table_stays_inside_its_card(page, labeled_round):
    from django.contrib.auth import get_user_model

    from labeling.services.projects import membership_set

    project, admin = labeled_round
    long_name = "moderator-with-a-very-long-user-name-" + "x" * 30
    user = get_user_model().objects.create_user(username=long_name, password="pw")
    membership_set(project=project, user=user, role=Membership.Role.MODERATOR)
    sign_in(page, username="admin", password=ADMIN_PASSWORD, next_url=reverse("project-dashboard", args=[project.slug]))
    for width in (1200, 1000, 700):
        page.set_viewport_size({"width": width, "height": 860})
        expect(page.locator(f'#throughput tr[data-user="{long_name}"]')).to_be_visible()
        box = page.locator("#throughput").evaluate(
            "card => { const c = card.getBoundingClientRect(), t = card.querySelector('table')"
            ".getBoundingClientRect(); return {card: c.right, table: t.right, overflow: card.scrollWidth - card.clientWidth}; }"
        )
        assert box["overflow"] <= 0 and box["table"] <= box["card"] + 0.5, (width, box)
