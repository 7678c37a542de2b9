"""The API documentation renders in a browser that can reach no host but Veil's own."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Membership
from tests.browser.conftest import PASSWORD, sign_in

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_its_operations_offline(page, live_server, transactional_db):
    from django.contrib.auth import get_user_model

    from labeling.services.projects import membership_set, project_create

    project = project_create(slug="policy", name="Policy review", auto_start=False)
    admin = get_user_model().objects.create_user(username="admin", password=PASSWORD)
    membership_set(project=project, user=admin, role=Membership.Role.ADMIN)

    own_host = urlsplit(live_server.url).netloc
    elsewhere = []

    def only_own_host(route):
        if urlsplit(route.request.url).netloc == own_host:
            return route.continue_()
        elsewhere.append(route.request.url)
        return route.abort("internetdisconnected")

    page.route("**/*", only_own_host)
    sign_in(page, username="admin", next_url=reverse("project-list"))
    page.goto(reverse("api-docs"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Veil API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert page.locator(".swagger-ui .opblock").count() > 20
    assert elsewhere == []
