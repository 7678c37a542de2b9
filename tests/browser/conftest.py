"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Without Chromium the tests are skipped with the reason, or fail when ``CI=true``, like
tests whose server is unreachable (tests/conftest.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "pw-moderator"


@pytest.fixture(scope="module")
def allow_orm_beside_playwright():
    """Let the test's own ORM calls run while Playwright is up.

    Playwright's sync API keeps an asyncio loop marked as running in this thread, which
    Django's guard against blocking calls in async code would refuse. The calls here are
    plain sync code. The browser lives for one module, so the loop and this setting end
    with the module and never reach the rest of the suite.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(allow_orm_beside_playwright):
    if not CHROMIUM.exists():
        why = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 860})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def labeling(transactional_db, tmp_path):
    """A project with real imported images in an open random round 0, and a moderator.

    Every item needs one label; gold items and the evaluation split are off so the
    queue hands out the round's items in priority order. The project does not start
    itself: no embedding, so round 0 is a seeded random sample.
    """
    from django.contrib.auth import get_user_model

    from labeling.models import Membership
    from labeling.services.ingest import import_job_create, import_job_run
    from labeling.services.projects import membership_set, project_create
    from labeling.services.rounds import round_start_initial
    from tests import imagefiles

    project = project_create(
        slug="policy", name="Policy review", overlap=1, batch_size=4, eval_fraction=0.0, gold_rate=0.0, auto_start=False
    )
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for seed in range(4):
        (incoming / f"photo-{seed}.jpg").write_bytes(imagefiles.jpeg_bytes(seed + 10))
    job = import_job_create(project=project, paths=[str(incoming)], source="browser-test")
    summary = import_job_run(job_id=job.pk, workers=1)
    assert summary.counts["accepted"] == 4, summary.as_dict()
    round_start_initial(project=project)

    user = get_user_model().objects.create_user(username="moderator", password=PASSWORD)
    membership = membership_set(project=project, user=user, role=Membership.Role.MODERATOR)
    return project, user, membership


def sign_in(page, *, username: str, password: str = PASSWORD, next_url: str) -> None:
    """Open ``next_url``, get sent to the login form, fill it in and come back."""
    page.goto(next_url)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_url}")


def eventually(check, *, timeout: float = 5.0):
    """Poll ``check`` (a query against the database the live server writes) until truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
