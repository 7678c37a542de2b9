"""The demo set-up behind `make demo`."""

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from labeling.models import Image, Project, Round

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
    assert Round.objects.get(project=demo, number=0).items.exists()

    again = io.StringIO()
    call_command("demo_setup", stdout=again)
    assert "duplicate 168" in again.getvalue(), "re-running adds no image"
    assert Image.objects.filter(project=demo, status="accepted").count() == 168
