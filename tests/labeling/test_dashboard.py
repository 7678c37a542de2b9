"""The admins' dashboard: who may open it, what it shows after a retrain, and its actions."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from labeling.charts import SVG_NS, category_colors
from labeling.models import Job, ModelVersion, Reveal, Round
from labeling.selectors.dashboard import embedding_map
from labeling.services.queue import annotation_submit, queue_next
from labeling.services.rounds import round_start_initial
from tests.labeling.factories import CLUSTER_KEYS, ImageFactory, clustered_pool

pytestmark = pytest.mark.django_db

NS = {"svg": SVG_NS}


@pytest.fixture
def pool(project):
    return clustered_pool(project)


def label(user, project, truth, *, leave: int = 0) -> int:
    """Label round 0's items as ``truth`` says, leaving ``leave`` of them unlabeled."""
    done = 0
    while True:
        open_items = Round.objects.get(project=project, number=0).items.filter(done=False).count()
        if open_items <= leave or (lease := queue_next(user=user, project=project)) is None:
            return done
        annotation_submit(
            user=user,
            item_id=lease.item.pk,
            client_key=uuid.uuid4().hex,
            category_key=truth[lease.item.image_id],
            time_spent_ms=2000 + 1000 * (done % 3),
        )
        done += 1


def dashboard_url(project) -> str:
    return reverse("project-dashboard", args=[project.slug])


def action_url(project, action: str) -> str:
    return reverse("project-dashboard-action", args=[project.slug, action])


def svg_in(page: str, section_id: str) -> ET.Element:
    section = re.search(rf'id="{section_id}".*?(<svg .*?</svg>)', page, re.S)
    assert section, f"no SVG in #{section_id}"
    return ET.fromstring(section.group(1))


def series(svg: ET.Element) -> dict[str, int]:
    return {g.get("data-name"): int(g.get("data-points")) for g in svg.iterfind(".//svg:g[@class='series']", NS)}


def test_only_admins_of_the_project_open_the_dashboard(client, project, admin_user, moderator, outsider):
    url = dashboard_url(project)
    response = client.get(url)
    assert response.status_code == 302 and reverse("login") in response["Location"]

    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.post(action_url(project, "retrain")).status_code == 404

    client.force_login(moderator)
    response = client.get(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("project-detail", args=[project.slug])
    assert "Only admins of the project" in response.content.decode()
    assert 'id="dashboard-link"' not in response.content.decode()
    client.post(action_url(project, "retrain"))
    assert not Job.objects.exists()

    client.force_login(admin_user)
    page = client.get(url).content.decode()
    assert "Retrain now" in page and "Start round 0" in page
    assert 'id="dashboard-link"' in client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert client.post(action_url(project, "no-such-action")).status_code == 404
    assert client.get(action_url(project, "retrain")).status_code == 405


def test_an_empty_project_shows_placeholders(client, project, admin_user):
    client.force_login(admin_user)
    page = client.get(dashboard_url(project)).content.decode()
    assert "No rounds yet" in page
    assert "No head evaluated yet" in page and "No evaluation labels yet" in page
    assert "No active backbone yet" in page
    assert re.search(r"<button type=\"submit\" disabled>Embed</button>", page)


def test_after_a_retrain_the_dashboard_shows_rounds_metrics_plots_and_the_map(
    client,
    project,
    pool,
    admin_user,
    moderator,
    django_capture_on_commit_callbacks,
):
    round_start_initial(project=project)
    with django_capture_on_commit_callbacks(execute=True):
        labeled = label(moderator, project, pool)
    head = ModelVersion.objects.get(kind="head", is_active=True)
    image_id = next(iter(pool))
    Reveal.objects.create(image_id=image_id, user=moderator, duration_ms=1500)
    Reveal.objects.create(image_id=image_id, user=moderator, duration_ms=2500)

    client.force_login(admin_user)
    page = client.get(dashboard_url(project)).content.decode()

    assert re.search(r'<tr class="round" data-round="1">', page)
    zero = re.search(r'<tr class="round" data-round="0">(.*?)</tr>', page, re.S).group(1)
    assert f'data-metric="accuracy">{head.metrics["accuracy"]:.3f}<' in zero
    assert f'data-metric="macro_f1">{head.metrics["macro_f1"]:.3f}<' in zero
    assert f'data-metric="neutral_fpr">{head.metrics["neutral_fpr"]:.3f}<' in zero
    per_class = re.search(r'<tr class="per-class-row" data-round="0">(.*?)</details>', page, re.S).group(1)
    assert "<details open>" in page
    for key in CLUSTER_KEYS:
        row = re.search(rf'<tr data-category="{key}">(.*?)</tr>', per_class, re.S).group(1)
        assert f'data-metric="precision">{head.metrics["per_class"][key]["precision"]:.3f}<' in row
        assert f'data-metric="recall">{head.metrics["per_class"][key]["recall"]:.3f}<' in row

    curve = svg_in(page, "learning-curve")
    assert series(curve) == {"accuracy": 1, "macro_f1": 1}
    point = curve.find(".//svg:g[@data-name='accuracy']/svg:circle/svg:title", NS).text
    assert point == f"accuracy: {head.metrics['accuracy']:.3f} at {head.metrics['n_train']}"
    pr = svg_in(page, "pr-curves")
    assert series(pr) == {key: len(head.metrics["pr_curves"][key]["precision"]) for key in CLUSTER_KEYS}

    circles = svg_in(page, "embedding-map").findall(".//svg:circle[@class='point']", NS)
    assert len(circles) == len(pool)
    assert all(re.fullmatch(r"/images/\d+/blurred/", c.get("data-blurred-url")) for c in circles)
    assert {c.get("data-source") for c in circles} == {"consensus", "prediction"}
    colors = category_colors([c.key for c in project.categories.all()])
    for c in circles:
        if c.get("data-source") == "consensus":
            assert c.get("fill") == colors[pool[int(c.get("data-image-id"))]]
    assert "/original/" not in page and "/thumbnail/" not in page

    row = re.search(r'<tr data-user="mod">(.*?)</tr>', page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells == [str(labeled), str(labeled), "3.0", "2", "2.0"]
    assert 'data-category="violence"' in page and "Imbalance ratio" in page


def test_the_retrain_button_queues_the_chain_that_opens_the_next_round(
    client,
    project,
    pool,
    admin_user,
    moderator,
    django_capture_on_commit_callbacks,
):
    round_start_initial(project=project)
    label(moderator, project, pool, leave=3)
    assert not Job.objects.exists()

    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(action_url(project, "retrain"), follow=True)
    assert len(callbacks) == 1
    job = Job.objects.get(kind="retrain")
    assert job.status == "succeeded" and job.created_by == admin_user, job.error
    assert f"Retrain job #{job.pk} is pending" in response.content.decode()
    assert Round.objects.filter(project=project, number=1).exists()
    page = client.get(dashboard_url(project)).content.decode()
    assert '<tr class="round" data-round="1">' in page
    assert f'data-job-id="{job.pk}"' in page


def test_start_round_zero_and_its_refusal_the_second_time(client, project, pool, admin_user):
    client.force_login(admin_user)
    page = client.post(action_url(project, "start-round"), follow=True).content.decode()
    assert "Round 0 started: 42 items, 30 of them from the evaluation split." in page
    assert '<tr class="round" data-round="0">' in page
    page = client.post(action_url(project, "start-round"), follow=True).content.decode()
    assert "already has rounds" in page
    assert Round.objects.count() == 1


def test_pretrain_and_embed_buttons_submit_jobs_or_explain_why_not(
    client,
    project,
    admin_user,
    django_capture_on_commit_callbacks,
):
    client.force_login(admin_user)
    page = client.post(action_url(project, "embed"), follow=True).content.decode()
    assert "has no backbone yet" in page
    page = client.post(action_url(project, "pretrain"), {"minutes": "0"}, follow=True).content.decode()
    assert "Pretraining minutes" in page
    assert not Job.objects.exists()

    ImageFactory.create_batch(3, project=project)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = client.post(action_url(project, "pretrain"), {"minutes": "2.5"}, follow=True).content.decode()
    job = Job.objects.get(kind="pretrain")
    assert len(callbacks) == 1
    assert job.params["config"] == "tiny" and job.params["minutes"] == 2.5 and job.status == "pending"
    assert f"Pretrain job #{job.pk} is pending" in page
    assert re.search(rf'<tr class="job status-pending" data-job-id="{job.pk}"[^>]*data-url="/api/jobs/{job.pk}/"', page)


def test_jobs_show_progress_and_a_failed_jobs_error(client, project, admin_user):
    Job.objects.create(project=project, kind="embed", status="running", done=30, total=120)
    failed = Job.objects.create(
        project=project,
        kind="retrain",
        status="failed",
        error="ApplicationError: The head needs consensus labels of two categories.",
    )
    Job.objects.create(project=project, kind="import", status="failed", error="old failure")
    Job.objects.create(project=project, kind="import", status="succeeded")
    client.force_login(admin_user)
    page = client.get(dashboard_url(project)).content.decode()
    assert '<progress max="120" value="30"></progress>' in page
    alerts = re.findall(r'class="message error job-failed" role="alert" data-job-id="(\d+)"', page)
    assert alerts == [str(failed.pk)], "only the latest job of a kind, when it failed, is called out"
    assert "The head needs consensus labels of two categories." in page


def test_the_map_samples_at_most_its_cap_with_a_seed(project, pool):
    colors = category_colors(CLUSTER_KEYS)
    first = embedding_map(project=project, colors=colors, max_points=50, seed=1)
    again = embedding_map(project=project, colors=colors, max_points=50, seed=1)
    assert first["shown"] == 50 and first["total"] == 120 and first["unlabeled"] == 50
    assert first["svg"] == again["svg"]
    ids = re.findall(r'data-image-id="(\d+)"', first["svg"])
    assert len(set(ids)) == 50 and set(map(int, ids)) <= set(pool)
