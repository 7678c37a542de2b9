"""Shared test set-up: a private MEDIA_ROOT per test, users and projects, and the rule
for tests whose server is unreachable (skipped with the reason outside CI, a failure
in CI)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DB_FIXTURES = {"db", "transactional_db", "django_db_setup", "client", "admin_client", "live_server"}


def server_reachable(url: str, default_port: int) -> tuple[bool, str]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, ""
    except OSError as exc:
        return False, f"{parsed.scheme} server at {host}:{port} is unreachable ({exc})"


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    problems = []
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        db = settings.DATABASES["default"]
        ok, why = server_reachable(f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432)
        if not ok:
            problems.append(("db", why))
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis"):
        ok, why = server_reachable(broker, 6379)
        if not ok:
            problems.append(("broker", why))
    if not problems:
        return
    if IN_CI:
        raise pytest.UsageError("; ".join(why for _, why in problems))
    for item in items:
        for kind, why in problems:
            needs_db = item.get_closest_marker("django_db") or DB_FIXTURES & set(item.fixturenames)
            if (kind == "db" and needs_db) or (kind == "broker" and item.get_closest_marker("broker")):
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def media_root(request, tmp_path):
    """Each test that touches Django gets its own empty MEDIA_ROOT."""
    if "settings" not in request.fixturenames and not (
        request.node.get_closest_marker("django_db") or DB_FIXTURES & set(request.fixturenames)
    ):
        yield None
        return
    settings = request.getfixturevalue("settings")
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "labeling.storage.WholeFileSystemStorage", "OPTIONS": {"location": str(root)}},
    }
    yield root


@pytest.fixture
def make_user_committed(transactional_db):
    from django.contrib.auth import get_user_model

    def make(username: str, **fields):
        return get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)

    return make


@pytest.fixture
def one_torch_thread():
    """Torch on one intra-op thread for the test. Test models are small, and on a shared
    two-core machine a second busy process makes two-thread torch stall on its barrier."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
