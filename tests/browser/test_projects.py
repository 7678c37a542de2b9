"""Projects and people in a real browser: a staff user creates a project with its
taxonomy through the form and creates a moderator's account; the moderator signs in and
finds the project; an admin reorders and renames categories and raises a budget."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from labeling.models import Category, Membership, Project
from labeling.services.projects import membership_set, project_create
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STAFF_PASSWORD = "pw-staff-projects"
CATEGORIES = [("violence", "Violence", "1"), ("drugs", "Drugs", "2"), ("neutral", "Neutral", "3")]


def test_staff_creates_a_project_and_its_moderator_finds_it(page, browser, live_server, transactional_db):
    staff = get_user_model().objects.create_user(username="stella", password=STAFF_PASSWORD, is_staff=True)
    sign_in(page, username=staff.username, password=STAFF_PASSWORD, next_url=reverse("project-list"))
    page.locator("#new-project").click()
    page.wait_for_url(f"**{reverse('project-create')}")

    page.locator("#id_slug").fill("memes")
    page.locator("#id_name").fill("Meme review")
    page.locator("#id_daily_sensitive_reveals").fill("80")
    page.locator("#id_quality-min_width").fill("64")
    for row, (key, name, hotkey) in enumerate(CATEGORIES, start=1):
        page.get_by_label(f"Key of row {row}", exact=True).fill(key)
        page.get_by_label(f"Name of row {row}", exact=True).fill(name)
        page.get_by_label(f"Hotkey of row {row}", exact=True).fill(hotkey)
    page.get_by_label("Row 1 is sensitive", exact=True).check()
    page.get_by_label("Guideline of row 1", exact=True).fill("Physical harm, gore.")
    page.get_by_role("button", name="Create project").click()

    page.wait_for_url(f"**{reverse('project-settings', args=['memes'])}")
    project = Project.objects.get(slug="memes")
    assert list(Category.objects.filter(project=project).values_list("key", "name", "hotkey")) == CATEGORIES
    assert Category.objects.get(project=project, key="violence").sensitive
    assert (project.daily_sensitive_reveals, project.quality["min_width"]) == (80, 64)
    expect(page.locator(".project-nav a[data-page='project-settings']")).to_have_attribute("aria-current", "page")

    page.locator("#id_username").fill("maria")
    page.locator("#id_create").check()
    page.get_by_role("button", name="Add member").click()
    password = page.locator("#new-password").inner_text()
    assert get_user_model().objects.get(username="maria").check_password(password)
    assert Membership.objects.get(project=project, user__username="maria").role == Membership.Role.MODERATOR
    expect(page.locator("tr[data-member='maria']")).to_be_visible()

    moderator_page = browser.new_context(base_url=live_server.url).new_page()
    sign_in(moderator_page, username="maria", password=password, next_url=reverse("project-list"))
    card = moderator_page.locator("li[data-project='memes']")
    expect(card).to_contain_text("Meme review")
    expect(card.locator("[data-action='label']")).to_have_attribute("href", reverse("label", args=["memes"]))
    expect(card.locator("[data-action='project-settings']")).to_have_count(0)
    card.locator("[data-action='label']").click()
    moderator_page.wait_for_url(f"**{reverse('label', args=['memes'])}")
    moderator_page.context.close()


def test_admin_reorders_and_renames_categories_and_raises_a_budget(page, transactional_db):
    project = project_create(
        slug="policy", name="Policy", taxonomy=[{"key": k, "name": n, "hotkey": h} for k, n, h in CATEGORIES]
    )
    users = get_user_model().objects
    admin = users.create_user(username="ada", password=STAFF_PASSWORD)
    membership_set(project=project, user=admin, role=Membership.Role.ADMIN)
    moderator = users.create_user(username="mod", password="pw-mod-projects")
    membership_set(project=project, user=moderator, role=Membership.Role.MODERATOR)

    sign_in(page, username="ada", password=STAFF_PASSWORD, next_url=reverse("project-settings", args=["policy"]))
    page.get_by_label("Position of row 1", exact=True).fill("2")
    page.get_by_label("Position of row 2", exact=True).fill("1")
    page.get_by_label("Name of row 2", exact=True).fill("Narcotics")
    page.get_by_role("button", name="Save categories").click()
    expect(page.get_by_role("status")).to_contain_text("Categories saved")
    assert list(Category.objects.filter(project=project).values_list("key", "name", "hotkey")) == [
        ("drugs", "Narcotics", "2"),
        ("violence", "Violence", "1"),
        ("neutral", "Neutral", "3"),
    ]
    expect(page.get_by_label("Name of row 1", exact=True)).to_have_value("Narcotics")

    page.get_by_label("Reveal budget of mod", exact=True).fill("400")
    page.get_by_role("button", name="Save mod").click()
    expect(page.get_by_role("status")).to_contain_text("mod saved")
    assert Membership.objects.get(project=project, user=moderator).reveal_budget == 400
    expect(page.locator("tr[data-member='mod']")).to_contain_text("0 / 400")
