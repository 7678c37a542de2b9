"""The labeling page as the server renders it, and saving a moderator's display defaults."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from labeling.models import Membership

pytestmark = pytest.mark.django_db


def page_config(content: str) -> dict:
    start = content.index('<script id="label-config" type="application/json">') + len(
        '<script id="label-config" type="application/json">'
    )
    return json.loads(content[start : content.index("</script>", start)])


def test_members_get_the_page_with_categories_hotkeys_and_guidelines(client, project, moderator):
    client.force_login(moderator)
    response = client.get(reverse("label", args=[project.slug]))
    assert response.status_code == 200
    page = response.content.decode()
    for category in project.categories.all():
        assert f'data-category="{category.key}" data-hotkey="{category.hotkey}"' in page
        assert f'aria-keyshortcuts="{category.hotkey}"' in page
        assert category.name in page and category.guideline in page
    assert [c.hotkey for c in project.categories.all()] == ["1", "2", "3", "4", "5", "6"]
    for shortcut in ("Space", "K", "G", "S", "U", "F", "?"):
        assert f'aria-keyshortcuts="{shortcut}"' in page
    assert "/original/" not in page, "nothing unblurred is referenced before a reveal"
    assert "js/label.js" in page and "css/label.css" in page

    config = page_config(page)
    assert config["urls"]["next"] == reverse("api-queue-next", args=[project.slug])
    assert config["urls"]["submit"] == "/api/queue/items/{id}/submit/"
    assert config["urls"]["reveal_finish"] == "/api/reveals/{id}/finish/"
    assert config["blur_strength"] == 24 and config["greyscale"] is False
    assert config["break_after_minutes"] == project.break_after_minutes
    assert config["break_after_sensitive_reveals"] == project.break_after_sensitive_reveals


def test_outsiders_get_404_and_anonymous_users_sign_in_first(client, project, outsider):
    url = reverse("label", args=[project.slug])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"{reverse('login')}?next={url}"
    assert client.post(reverse("label-preferences", args=[project.slug]), {"blur_strength": 3}).status_code == 302

    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.get(reverse("label", args=["no-such-project"])).status_code == 404
    response = client.post(reverse("label-preferences", args=[project.slug]), {"blur_strength": 3})
    assert response.status_code == 404


def test_project_list_links_to_the_labeling_page(client, project, moderator):
    client.force_login(moderator)
    page = client.get(reverse("project-list")).content.decode()
    assert f'href="{reverse("label", args=[project.slug])}"' in page


def test_saved_defaults_are_used_on_the_next_render(client, project, moderator):
    client.force_login(moderator)
    url = reverse("label-preferences", args=[project.slug])
    response = client.post(url, {"blur_strength": "9", "greyscale": "on"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json() == {"blur_strength": 9, "greyscale": True}
    membership = Membership.objects.get(project=project, user=moderator)
    assert (membership.blur_strength, membership.greyscale) == (9, True)

    page = client.get(reverse("label", args=[project.slug])).content.decode()
    assert "--veil-blur: 9px" in page
    assert 'class="stage greyscale"' in page
    assert 'id="greyscale-default" name="greyscale" value="on" checked' in page
    assert page_config(page)["blur_strength"] == 9 and page_config(page)["greyscale"] is True

    # The plain form (no script): an unchecked box turns greyscale off; back to the page.
    response = client.post(url, {"blur_strength": "30"}, follow=True)
    assert response.redirect_chain == [(reverse("label", args=[project.slug]), 302)]
    assert "Display defaults saved." in response.content.decode()
    membership.refresh_from_db()
    assert (membership.blur_strength, membership.greyscale) == (30, False)


@pytest.mark.parametrize(
    ("value", "words"), [("65", "blur_strength"), ("-1", "blur_strength"), ("lots", "whole number")]
)
def test_bad_defaults_are_refused_and_nothing_changes(client, project, moderator, value, words):
    client.force_login(moderator)
    url = reverse("label-preferences", args=[project.slug])
    response = client.post(url, {"blur_strength": value, "greyscale": "on"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert words in response.json()["message"]
    membership = Membership.objects.get(project=project, user=moderator)
    assert (membership.blur_strength, membership.greyscale) == (24, False)

    response = client.post(url, {"blur_strength": value}, follow=True)
    assert words in response.content.decode()


def test_the_page_answers_get_only_and_defaults_post_only(client, project, moderator):
    client.force_login(moderator)
    assert client.post(reverse("label", args=[project.slug])).status_code == 405
    assert client.get(reverse("label-preferences", args=[project.slug])).status_code == 405


def test_a_superuser_without_membership_sees_model_defaults_and_cannot_save(client, project, make_user):
    boss = make_user("boss", is_superuser=True, is_staff=True)
    client.force_login(boss)
    page = client.get(reverse("label", args=[project.slug])).content.decode()
    assert "--veil-blur: 24px" in page
    response = client.post(
        reverse("label-preferences", args=[project.slug]), {"blur_strength": "3"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400 and response.json()["code"] == "not_a_member"


def test_the_page_shows_progress_and_the_reveal_budget(client, project, moderator):
    project.daily_sensitive_reveals = 7
    project.save()
    client.force_login(moderator)
    page = client.get(reverse("label", args=[project.slug])).content.decode()
    assert '<span data-wellbeing="used">0</span> / <span data-wellbeing="budget">7</span>' in page
    assert '<span data-progress="my_labels">0</span>' in page
