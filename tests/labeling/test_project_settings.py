"""Projects and their people, in the app: the services that create and change a project,
its taxonomy and its members, and the pages over them (create, settings, the list)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse

from labeling.errors import ApplicationError, Forbidden, NotFound
from labeling.models import Annotation, Category, Membership, ModelVersion, Project, QueueItem, Round
from labeling.selectors.projects import PROJECT_PAGES, project_links
from labeling.services import projects as services
from labeling.services.wellbeing import reveal_budget
from tests.labeling.factories import ImageFactory

pytestmark = pytest.mark.django_db

THREE = [
    {"key": "violence", "name": "Violence", "hotkey": "1", "sensitive": True, "guideline": "Harm."},
    {"key": "drugs", "name": "Drugs", "hotkey": "2"},
    {"key": "neutral", "name": "Neutral", "hotkey": "3"},
]


def keys(project) -> list[tuple[str, str, str]]:
    return list(Category.objects.filter(project=project).values_list("key", "name", "hotkey"))


def specs(project) -> list[dict]:
    return [
        {
            "id": c.pk,
            "key": c.key,
            "name": c.name,
            "hotkey": c.hotkey,
            "guideline": c.guideline,
            "sensitive": c.sensitive,
        }
        for c in Category.objects.filter(project=project)
    ]


def label(project, user, key: str) -> Annotation:
    image = ImageFactory(project=project)
    category = Category.objects.get(project=project, key=key)
    return Annotation.objects.create(image=image, user=user, category=category, client_key=f"k-{image.pk}")


@pytest.fixture
def staff(make_user):
    return make_user("stella", is_staff=True)


# --- services ----------------------------------------------------------------------------------


def test_staff_creates_a_project_and_becomes_its_admin(staff, moderator):
    project = services.project_create_by(actor=staff, slug="memes", name="Memes", taxonomy=THREE, overlap=3)
    assert keys(project) == [("violence", "Violence", "1"), ("drugs", "Drugs", "2"), ("neutral", "Neutral", "3")]
    assert Membership.objects.get(project=project, user=staff).role == Membership.Role.ADMIN
    assert project.overlap == 3
    with pytest.raises(Forbidden):
        services.project_create_by(actor=moderator, slug="other", taxonomy=THREE)
    assert not Project.objects.filter(slug="other").exists()


@pytest.mark.parametrize(
    ("taxonomy", "field", "words"),
    [
        ([{"key": "a", "hotkey": "1"}, {"key": "b", "hotkey": "1"}], "hotkey", "hotkey '1' is used twice"),
        ([{"key": "a"}, {"key": "a"}], "key", "key 'a' is used twice"),
        ([{"key": "a", "hotkey": "s"}], "hotkey", "labeling page uses"),
        ([{"key": "Bad Key"}], "key", "lower-case"),
        ([], "categories", "at least one category"),
    ],
)
def test_invalid_taxonomy_is_refused_naming_the_field(staff, taxonomy, field, words):
    with pytest.raises(ApplicationError) as caught:
        services.project_create_by(actor=staff, slug="memes", taxonomy=taxonomy)
    assert caught.value.extra["field"] == field
    assert words in caught.value.message
    assert not Project.objects.filter(slug="memes").exists()


def test_blank_hotkeys_get_the_first_free_digit(staff):
    project = services.project_create_by(
        actor=staff, slug="memes", taxonomy=[{"key": "a"}, {"key": "b", "hotkey": "1"}, {"key": "c"}]
    )
    assert [h for _, _, h in keys(project)] == ["2", "1", "3"]


def test_admin_updates_settings_and_quality(project, admin_user, moderator, outsider):
    updated = services.project_update(
        actor=admin_user,
        project=project,
        overlap=3,
        daily_sensitive_reveals=20,
        quality={"min_width": 64, "min_height": 64},
    )
    project.refresh_from_db()
    assert (project.overlap, project.daily_sensitive_reveals) == (3, 20) == (updated.overlap, 20)
    assert project.quality["min_width"] == 64 and project.quality["formats"]
    for user, error in ((moderator, Forbidden), (outsider, NotFound)):
        with pytest.raises(error):
            services.project_update(actor=user, project=project, overlap=1)
    with pytest.raises(ApplicationError) as caught:
        services.project_update(actor=admin_user, project=project, overlap=11)
    assert caught.value.extra["field"] == "overlap"
    with pytest.raises(ApplicationError) as caught:
        services.project_update(actor=admin_user, project=project, quality={"blank_std": -1})
    assert caught.value.extra["field"] == "quality"
    with pytest.raises(ApplicationError) as caught:
        services.project_update(actor=admin_user, project=project, slug="renamed")
    assert caught.value.extra["field"] == "slug"
    project.refresh_from_db()
    assert project.overlap == 3 and project.slug == "policy"


def test_taxonomy_reorder_rename_add_remove_and_swap_hotkeys(project, admin_user):
    rows = specs(project)
    violence, drugs, nsfw = rows[0], rows[1], rows[2]
    drugs["name"], drugs["hotkey"], violence["hotkey"] = "Narcotics", violence["hotkey"], drugs["hotkey"]
    new = {"key": "spam", "name": "Spam", "hotkey": "9", "sensitive": False}
    services.taxonomy_set(actor=admin_user, project=project, categories=[drugs, violence, nsfw, new])
    assert keys(project) == [
        ("drugs", "Narcotics", "1"),
        ("violence", "Violence", "2"),
        ("nsfw", "NSFW", "3"),
        ("spam", "Spam", "9"),
    ]
    assert Category.objects.get(project=project, key="drugs").pk == drugs["id"]


def test_taxonomy_keeps_keys_and_categories_that_have_labels(project, admin_user, moderator):
    label(project, moderator, "violence")
    rows = specs(project)
    before = keys(project)
    renamed = [dict(rows[0], key="gore"), *rows[1:]]
    with pytest.raises(ApplicationError) as caught:
        services.taxonomy_set(actor=admin_user, project=project, categories=renamed)
    assert caught.value.code == "category_in_use" and caught.value.extra == {"index": 0, "field": "key"}
    with pytest.raises(ApplicationError) as caught:
        services.taxonomy_set(actor=admin_user, project=project, categories=rows[1:])
    assert "violence" in caught.value.message and caught.value.code == "category_in_use"
    assert keys(project) == before
    # An unused category may be renamed and removed; a used one renamed by its name.
    rows[1]["key"], rows[0]["name"] = "narcotics", "Gore"
    services.taxonomy_set(actor=admin_user, project=project, categories=[rows[0], rows[1]])
    assert keys(project) == [("violence", "Gore", "1"), ("narcotics", "Drugs", "2")]
    assert Annotation.objects.get().category.key == "violence"


def test_taxonomy_refuses_categories_of_other_projects_and_repeats(project, admin_user):
    other = services.project_create(slug="other", taxonomy=THREE)
    rows = specs(project)
    before = keys(project)
    foreign = dict(specs(other)[0], key="stolen", hotkey="8")
    for categories, field in (([*rows, foreign], "id"), ([*rows, dict(rows[0], key="copy", hotkey="9")], "id")):
        with pytest.raises(ApplicationError) as caught:
            services.taxonomy_set(actor=admin_user, project=project, categories=categories)
        assert caught.value.extra == {"index": len(rows), "field": field}
    assert keys(project) == before
    assert keys(other) == [(c["key"], c["name"], c["hotkey"]) for c in THREE]


def test_taxonomy_is_for_admins_only(project, moderator, outsider):
    rows = specs(project)
    for user, error in ((moderator, Forbidden), (outsider, NotFound)):
        with pytest.raises(error):
            services.taxonomy_set(actor=user, project=project, categories=rows[:1])
    assert len(keys(project)) == len(rows)


def test_members_invited_created_changed_and_removed(project, admin_user, make_user):
    bob = make_user("bob")
    membership = services.member_add(actor=admin_user, project=project, username="bob", role="moderator")
    assert membership.user == bob and membership.role == "moderator"
    with pytest.raises(ApplicationError) as caught:
        services.member_add(actor=admin_user, project=project, username="bob")
    assert caught.value.extra["field"] == "username"
    with pytest.raises(ApplicationError) as caught:
        services.member_add(actor=admin_user, project=project, username="nobody")
    assert caught.value.code == "unknown_user"

    membership, password = services.member_create(actor=admin_user, project=project, username="carol")
    assert len(password) >= 12 and membership.user.check_password(password)
    assert not get_user_model().objects.filter(password=password).exists()
    _, given = services.member_create(
        actor=admin_user, project=project, username="dan", role="admin", password="a long passphrase 7"
    )
    assert given == "a long passphrase 7"
    assert Membership.objects.get(project=project, user__username="dan").role == "admin"
    with pytest.raises(ApplicationError) as caught:
        services.member_create(actor=admin_user, project=project, username="erin", password="short")
    assert caught.value.extra["field"] == "password"
    with pytest.raises(ApplicationError) as caught:
        services.member_create(actor=admin_user, project=project, username="bad name!")
    assert caught.value.extra["field"] == "username"
    with pytest.raises(ApplicationError) as caught:
        services.member_create(actor=admin_user, project=project, username="bob")
    assert caught.value.code == "user_exists"
    assert not get_user_model().objects.filter(username__in=["erin", "bad name!"]).exists()

    services.member_update(actor=admin_user, project=project, user=bob, role="moderator", reveal_budget=400)
    assert reveal_budget(user=bob, project=project)["budget"] == 400
    services.member_update(actor=admin_user, project=project, user=bob, role="admin", reveal_budget=None)
    assert Membership.objects.get(project=project, user=bob).role == "admin"

    label(project, bob, "drugs")
    services.member_remove(actor=admin_user, project=project, user=bob)
    assert not Membership.objects.filter(project=project, user=bob).exists()
    assert Annotation.objects.filter(user=bob).count() == 1


def test_the_last_admin_stays(project, admin_user, make_user):
    with pytest.raises(ApplicationError) as caught:
        services.member_remove(actor=admin_user, project=project, user=admin_user)
    assert caught.value.code == "last_admin"
    with pytest.raises(ApplicationError) as caught:
        services.member_role_set(actor=admin_user, project=project, user=admin_user, role="moderator")
    assert caught.value.code == "last_admin" and caught.value.extra["field"] == "role"
    assert Membership.objects.get(project=project, user=admin_user).role == "admin"
    # With a second admin the first may step down and leave.
    services.member_create(actor=admin_user, project=project, username="dan", role="admin")
    services.member_role_set(actor=admin_user, project=project, user=admin_user, role="moderator")
    dan = get_user_model().objects.get(username="dan")
    services.member_remove(actor=dan, project=project, user=admin_user)
    assert list(Membership.objects.filter(project=project).values_list("user__username", "role")) == [("dan", "admin")]


def test_members_are_managed_by_admins_only(project, admin_user, moderator, outsider):
    for user, error in ((moderator, Forbidden), (outsider, NotFound)):
        with pytest.raises(error):
            services.member_add(actor=user, project=project, username=outsider.username)
        with pytest.raises(error):
            services.member_create(actor=user, project=project, username="mallory")
        with pytest.raises(error):
            services.member_role_set(actor=user, project=project, user=moderator, role="admin")
        with pytest.raises(error):
            services.member_remove(actor=user, project=project, user=admin_user)
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert Membership.objects.filter(project=project).count() == 2


# --- pages -------------------------------------------------------------------------------------


def create_form(**overrides) -> dict:
    data = {
        "slug": "memes",
        "name": "Memes",
        "description": "",
        "overlap": "2",
        "batch_size": "50",
        "strategy": "combined",
        "near_duplicate_radius": "8",
        "blur_radius": "0",
        "lease_minutes": "10",
        "eval_fraction": "0.05",
        "eval_cap": "500",
        "gold_rate": "0.05",
        "auto_start": "on",
        "auto_accept_precision": "0.95",
        "auto_accept_min_support": "20",
        "break_after_minutes": "45",
        "break_after_sensitive_reveals": "30",
        "daily_sensitive_reveals": "120",
        "quality-min_bytes": "1000",
        "quality-min_width": "64",
        "quality-min_height": "64",
        "quality-max_pixels": "50000000",
        "quality-blank_std": "3",
        "quality-formats": "jpeg, png",
        "categories-TOTAL_FORMS": "6",
        "categories-INITIAL_FORMS": "0",
        "categories-MIN_NUM_FORMS": "0",
        "categories-MAX_NUM_FORMS": "1000",
    }
    for i, spec in enumerate(THREE):
        data[f"categories-{i}-key"] = spec["key"]
        data[f"categories-{i}-name"] = spec["name"]
        data[f"categories-{i}-hotkey"] = spec["hotkey"]
        data[f"categories-{i}-ORDER"] = str(i + 1)
    data["categories-0-sensitive"] = "on"
    data.update(overrides)
    return data


def test_staff_create_a_project_with_the_form(client, staff):
    client.force_login(staff)
    assert 'id="new-project"' in client.get(reverse("project-list")).content.decode()
    assert client.get(reverse("project-create")).status_code == 200
    response = client.post(reverse("project-create"), create_form())
    assert response.status_code == 302 and response["Location"] == reverse("project-settings", args=["memes"])
    project = Project.objects.get(slug="memes")
    assert keys(project) == [("violence", "Violence", "1"), ("drugs", "Drugs", "2"), ("neutral", "Neutral", "3")]
    assert Category.objects.get(project=project, key="violence").sensitive
    assert project.daily_sensitive_reveals == 120 and project.batch_size == 50
    assert project.quality["min_width"] == 64 and project.quality["formats"] == ["JPEG", "PNG"]
    assert Membership.objects.get(project=project, user=staff).role == "admin"


def test_create_form_shows_errors_by_field(client, staff):
    client.force_login(staff)
    response = client.post(reverse("project-create"), create_form(**{"categories-1-hotkey": "1"}))
    assert response.status_code == 400
    assert "hotkey &#x27;1&#x27; is used twice" in response.content.decode()
    assert response.context["categories"].forms[1].errors["hotkey"]
    response = client.post(reverse("project-create"), create_form(**{"quality-min_width": "-3", "overlap": "0"}))
    assert response.status_code == 400
    assert response.context["quality"].errors["min_width"] and response.context["form"].errors["overlap"]
    assert not Project.objects.filter(slug="memes").exists()


def test_others_cannot_open_the_create_form(client, admin_user):
    client.force_login(admin_user)
    assert 'id="new-project"' not in client.get(reverse("project-list")).content.decode()
    response = client.post(reverse("project-create"), create_form(), follow=True)
    assert response.redirect_chain[-1][0] == reverse("project-list")
    assert "Only staff" in response.content.decode()
    assert not Project.objects.filter(slug="memes").exists()


def test_settings_page_saves_settings(client, project, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("project-settings", args=[project.slug]))
    assert page.status_code == 200
    data = {k: v for k, v in create_form().items() if not k.startswith("categories-") and k != "slug"}
    data.update(name="Policy v2", overlap="3", break_after_minutes="30")
    response = client.post(reverse("project-settings", args=[project.slug]), data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.overlap, project.break_after_minutes) == ("Policy v2", 3, 30)
    response = client.post(reverse("project-settings", args=[project.slug]), {**data, "overlap": "99"})
    assert response.status_code == 400 and response.context["form"].errors["overlap"]
    project.refresh_from_db()
    assert project.overlap == 3


def taxonomy_form(project, rows: list[dict], extra: list[dict] = ()) -> dict:
    data = {
        "categories-TOTAL_FORMS": str(len(rows) + len(extra)),
        "categories-INITIAL_FORMS": str(len(rows)),
        "categories-MIN_NUM_FORMS": "0",
        "categories-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate([*rows, *extra]):
        for name in ("id", "key", "name", "hotkey", "guideline", "ORDER"):
            if row.get(name) is not None:
                data[f"categories-{i}-{name}"] = str(row[name])
        if row.get("sensitive"):
            data[f"categories-{i}-sensitive"] = "on"
        if row.get("DELETE"):
            data[f"categories-{i}-DELETE"] = "on"
    return data


def test_settings_page_edits_the_taxonomy(client, project, admin_user, moderator):
    client.force_login(admin_user)
    label(project, moderator, "violence")
    rows = specs(project)
    for order, row in enumerate(rows, start=1):
        row["ORDER"] = order
    rows[0]["ORDER"], rows[1]["ORDER"], rows[1]["name"] = 2, 1, "Narcotics"
    rows[2]["DELETE"] = True
    url = reverse("project-categories", args=[project.slug])
    response = client.post(url, taxonomy_form(project, rows, extra=[{"key": "spam", "name": "Spam"}]))
    assert response.status_code == 302
    assert [k for k, _, _ in keys(project)] == ["drugs", "violence", "neutral", "hateful_memes", "weapons", "spam"]
    assert keys(project)[0][1] == "Narcotics" and keys(project)[-1][2] == "3"

    rows = specs(project)
    rows[1]["key"] = "gore"
    response = client.post(url, taxonomy_form(project, rows))
    assert response.status_code == 400
    assert response.context["categories"].forms[1].errors["key"]
    assert "has labels" in response.content.decode()
    assert "gore" not in [k for k, _, _ in keys(project)]


def test_settings_page_manages_members(client, project, admin_user, moderator, outsider):
    client.force_login(admin_user)
    add = reverse("project-member-add", args=[project.slug])
    response = client.post(add, {"username": "newbie", "role": "moderator", "create": "on"})
    assert response.status_code == 200
    password = response.context["new_account"]["password"]
    assert password in response.content.decode()
    assert get_user_model().objects.get(username="newbie").check_password(password)
    # Shown once: the next visit does not show it.
    assert password not in client.get(reverse("project-settings", args=[project.slug])).content.decode()

    assert client.post(add, {"username": outsider.username, "role": "admin"}).status_code == 302
    assert Membership.objects.get(project=project, user=outsider).role == "admin"
    response = client.post(add, {"username": "ghost", "role": "moderator"})
    assert response.status_code == 400 and response.context["member_form"].errors["username"]

    change = reverse("project-member-change", args=[project.slug, moderator.username])
    response = client.post(change, {"mod-role": "moderator", "mod-reveal_budget": "500"})
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=moderator).reveal_budget == 500

    remove = reverse("project-member-remove", args=[project.slug, moderator.username])
    assert client.post(remove).status_code == 302
    assert not Membership.objects.filter(project=project, user=moderator).exists()

    client.post(reverse("project-member-remove", args=[project.slug, outsider.username]))
    response = client.post(reverse("project-member-remove", args=[project.slug, admin_user.username]), follow=True)
    assert "last admin" in response.content.decode()
    assert Membership.objects.filter(project=project, user=admin_user, role="admin").exists()


def test_project_list_shows_progress_and_the_actions_of_each_role(client, project, admin_user, moderator):
    round_ = Round.objects.create(project=project, number=2)
    images = ImageFactory.create_batch(4, project=project)
    for i, image in enumerate(images):
        QueueItem.objects.create(round=round_, image=image, done=i == 0)
    label(project, moderator, "drugs")
    ModelVersion.objects.create(project=project, kind="head", is_active=True, metrics={"accuracy": 0.875})

    client.force_login(moderator)
    page = client.get(reverse("project-list")).content.decode()
    assert 'data-stat="round">2<' in page and 'data-stat="done">1<' in page and 'data-stat="total">4<' in page
    assert 'data-stat="labels-today">1<' in page and 'data-stat="accuracy">88%<' in page
    assert f'href="{reverse("label", args=[project.slug])}"' in page
    for admin_only in ("project-dashboard", "project-review", "project-settings"):
        assert reverse(admin_only, args=[project.slug]) not in page

    client.force_login(admin_user)
    page = client.get(reverse("project-list")).content.decode()
    for name in ("label", "project-dashboard", "project-review", "project-settings"):
        assert f'href="{reverse(name, args=[project.slug])}"' in page


@pytest.mark.parametrize("name", ["project-detail", "label", "project-dashboard", "project-review", "project-settings"])
def test_every_project_page_links_every_page_the_role_may_use(client, project, admin_user, moderator, name):
    client.force_login(admin_user)
    page = client.get(reverse(name, args=[project.slug])).content.decode()
    assert 'class="project-nav"' in page
    for target in ("project-detail", "label", "project-dashboard", "project-review", "project-settings"):
        assert f'href="{reverse(target, args=[project.slug])}"' in page, target
    if name in ("project-detail", "label"):
        client.force_login(moderator)
        page = client.get(reverse(name, args=[project.slug])).content.decode()
        assert f'href="{reverse("label", args=[project.slug])}"' in page
        assert reverse("project-settings", args=[project.slug]) not in page
        assert reverse("project-review", args=[project.slug]) not in page


def installed(name: str, slug: str) -> bool:
    try:
        reverse(name, kwargs={"slug": slug})
    except NoReverseMatch:
        return False
    return True


@pytest.mark.parametrize("role", ["admin", "moderator", None])
def test_the_nav_lists_the_installed_pages_the_role_may_open(project, role):
    links = [link["name"] for link in project_links(project=project, role=role)]
    expected = [name for name, _, rule in PROJECT_PAGES if rule.allows(role) and installed(name, project.slug)]
    assert links == expected
    assert ("project-settings" in links) == (role == "admin") and ("label" in links) == (role is not None)


def test_an_admin_who_leaves_goes_back_to_the_project_list(client, project, admin_user):
    services.member_create(actor=admin_user, project=project, username="dan", role="admin")
    client.force_login(admin_user)
    response = client.post(reverse("project-member-remove", args=[project.slug, admin_user.username]))
    assert response.status_code == 302 and response["Location"] == reverse("project-list")
    assert not Membership.objects.filter(project=project, user=admin_user).exists()
