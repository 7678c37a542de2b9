"""The demo set-up behind `make demo`."""

import io
import re
import uuid

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from labeling.models import Image, Job, ModelVersion, Project, Round
from labeling.services.queue import annotation_submit, queue_next

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_demo_setup_creates_accounts_project_and_round():
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    text = out.getvalue()
    credentials = dict(re.findall(r"^\s+(admin|moderator)\s+password: (\S+)$", text, flags=re.M))
    assert set(credentials) == {"admin", "moderator"}
    for username, password in credentials.items():
        assert authenticate(username=username, password=password) is not None

    demo = Project.objects.get(slug="demo")
    assert list(demo.categories.values_list("key", flat=True)) == ["dress", "hat", "pants", "shoes"]
    accepted = Image.objects.filter(project=demo, status="accepted")
    assert accepted.count() == 168
    assert set(accepted.values_list("source_label__key", flat=True)) == {"dress", "hat", "pants", "shoes"}
    zero = Round.objects.get(project=demo, number=0)
    assert zero.strategy == "prototypes", "round 0 is chosen on real embeddings"
    backbone = ModelVersion.objects.get(project=demo, kind="backbone", is_active=True)
    assert backbone.name == "efficientnet-lite0" and backbone.embeddings.count() == 168
    assert "Round 0 is open" in text

    again = io.StringIO()
    call_command("demo_setup", stdout=again)
    assert "duplicate 168" in again.getvalue(), "re-running adds no image"
    assert Image.objects.filter(project=demo, status="accepted").count() == 168


def test_the_demo_learns_from_round_zero_without_a_button(django_capture_on_commit_callbacks):
    call_command("demo_setup", stdout=io.StringIO())
    demo = Project.objects.get(slug="demo")
    moderator = get_user_model().objects.get(username="moderator")
    with django_capture_on_commit_callbacks(execute=True):
        while (lease := queue_next(user=moderator, project=demo)) is not None:
            image = lease.item.image
            annotation_submit(
                user=moderator, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=image.source_label.key
            )
    retrain = Job.objects.get(project=demo, kind="retrain")
    assert retrain.status == "succeeded", retrain.error
    head = ModelVersion.objects.get(project=demo, kind="head", is_active=True)
    assert head.metrics["accuracy"] >= 0.75, "four classes: chance is 0.25"
    assert Round.objects.get(project=demo, number=1).strategy == "combined"
