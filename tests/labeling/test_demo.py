"""The demo set-up behind `make demo`."""

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.conf import settings
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

    imports = Job.objects.filter(project=demo, kind="import").count()
    again = io.StringIO()
    call_command("demo_setup", stdout=again)
    text = again.getvalue()
    assert "already has its 168 images; nothing imported" in text
    assert Job.objects.filter(project=demo, kind="import").count() == imports, "re-running imports nothing"
    assert Image.objects.filter(project=demo).count() == 168
    for username, password in credentials.items():
        assert authenticate(username=username, password=password) is not None, "passwords are kept"
        assert password not in text
        assert re.search(rf"^\s+{username}\s+password: unchanged.*changepassword {username}", text, flags=re.M)


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


def test_serve_prints_where_to_sign_in_after_the_servers_start_up_lines(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "VEIL_", "DJANGO_"))}
    env.update(
        VEIL_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="moderation.settings.local", PYTHONUNBUFFERED="1"
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("Veil is running at" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    banner = next(i for i, line in enumerate(lines) if "Veil is running at" in line)
    started = next(i for i, line in enumerate(lines) if "Starting development server" in line)
    assert started < banner, lines
    assert f"http://127.0.0.1:{port}/" in lines[banner]
