"""Flags for policy review: the queue of open flags, their resolutions (relabel, dismiss,
guideline change) through the service, the API and the page, and who may resolve them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.errors import ApplicationError, Conflict, Forbidden, NotFound
from labeling.models import Adjudication, Annotation, Category, FlagResolution, QueueItem, Round
from labeling.selectors.flags import flag_queue, open_flag_counts, open_flags
from labeling.selectors.labels import LabelSource, final_labels_of
from labeling.services.flags import flag_resolve
from labeling.services.projects import membership_set
from labeling.services.queue import annotation_submit, queue_next
from tests.labeling.factories import ImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged(project, moderator):
    """Three images in an open round: the first labeled "neutral" and flagged with a note,
    the second flagged without a note, the third neither."""
    project.overlap, project.gold_rate = 1, 0.0
    project.save()
    images = ImageFactory.create_batch(3, project=project)
    round_ = Round.objects.create(project=project, number=0, strategy="random")
    for priority, image in enumerate(images):
        QueueItem.objects.create(round=round_, image=image, priority=-priority)
    first = queue_next(user=moderator, project=project)
    annotation_submit(user=moderator, item_id=first.item.pk, client_key="label-1", category_key="neutral")
    annotation_submit(
        user=moderator, item_id=first.item.pk, client_key="flag-1", kind="flag", note="Is a toy gun a weapon?"
    )
    second = queue_next(user=moderator, project=project)
    annotation_submit(user=moderator, item_id=second.item.pk, client_key="flag-2", kind="flag")
    return {"noted": images[0], "bare": images[1], "clean": images[2], "items": (first.item, second.item)}


def test_the_queue_lists_open_flags_with_who_when_the_note_and_the_final_label(project, moderator, flagged):
    queue = flag_queue(project=project)
    assert [row.image_id for row in queue] == [flagged["noted"].pk, flagged["bare"].pk]
    noted, bare = queue
    assert [(f.user, f.note) for f in noted.flags] == [(moderator.username, "Is a toy gun a weapon?")]
    assert noted.flags[0].created is not None
    assert (noted.final_label.category.key, noted.final_label.source) == ("neutral", LabelSource.CONSENSUS)
    assert [f.note for f in bare.flags] == [""] and bare.final_label is None
    assert open_flag_counts(project=project) == {"flags": 2, "images": 2}


def test_relabel_adjudicates_so_the_final_label_changes_and_the_flag_closes(project, admin_user, flagged):
    image = flagged["noted"]
    resolution = flag_resolve(
        actor=admin_user, image=image, action="relabel", category_key="weapons", note="Replicas count as weapons."
    )
    stored = FlagResolution.objects.get()
    assert stored == resolution
    assert (stored.image, stored.action, stored.resolved_by, stored.note) == (
        image,
        "relabel",
        admin_user,
        "Replicas count as weapons.",
    )
    assert stored.flag == Annotation.objects.get(client_key="flag-1") and stored.created is not None
    decision = Adjudication.objects.get(image=image)
    assert stored.adjudication == decision and stored.category.key == "weapons"
    assert (decision.category.key, decision.decided_by, decision.reason) == (
        "weapons",
        admin_user,
        "Replicas count as weapons.",
    )
    final = final_labels_of(project=project, image_ids=[image.pk])[image.pk]
    assert (final.category.key, final.source) == ("weapons", LabelSource.ADJUDICATED)
    assert [row.image_id for row in flag_queue(project=project)] == [flagged["bare"].pk]
    assert open_flag_counts(project=project) == {"flags": 1, "images": 1}


def test_dismiss_records_the_resolution_and_leaves_the_label(project, admin_user, flagged):
    image = flagged["noted"]
    flag_resolve(actor=admin_user, image=image, action="dismiss", note="A toy is not a weapon.")
    resolution = FlagResolution.objects.get()
    assert (resolution.action, resolution.note, resolution.category, resolution.adjudication) == (
        "dismiss",
        "A toy is not a weapon.",
        None,
        None,
    )
    assert not Adjudication.objects.exists()
    final = final_labels_of(project=project, image_ids=[image.pk])[image.pk]
    assert (final.category.key, final.source) == ("neutral", LabelSource.CONSENSUS)
    assert not open_flags(project=project).filter(image=image).exists()


def test_a_guideline_change_rewrites_the_category_guideline(project, admin_user, flagged):
    flag_resolve(
        actor=admin_user,
        image=flagged["noted"],
        action="guideline",
        category_key="weapons",
        guideline="Firearms, knives or other weapons, replicas and toys that look real included.",
        note="Toys were unclear.",
    )
    weapons = Category.objects.get(project=project, key="weapons")
    assert weapons.guideline == "Firearms, knives or other weapons, replicas and toys that look real included."
    resolution = FlagResolution.objects.get()
    assert (resolution.action, resolution.category, resolution.adjudication) == ("guideline", weapons, None)
    assert not Adjudication.objects.exists()


def test_a_flag_raised_after_a_resolution_is_open_again(project, admin_user, moderator, flagged):
    image = flagged["noted"]
    flag_resolve(actor=admin_user, image=image, action="dismiss")
    assert image.pk not in {row.image_id for row in flag_queue(project=project)}
    annotation_submit(
        user=moderator, item_id=flagged["items"][0].pk, client_key="flag-3", kind="flag", note="Still unsure."
    )
    (row,) = [row for row in flag_queue(project=project) if row.image_id == image.pk]
    assert [f.note for f in row.flags] == ["Still unsure."], "only the flag after the resolution is open"
    flag_resolve(actor=admin_user, image=image, action="dismiss", note="Again.")
    assert list(FlagResolution.objects.filter(image=image).order_by("pk").values_list("note", flat=True)) == [
        "",
        "Again.",
    ]


def test_a_moderator_cannot_resolve_and_an_outsider_is_told_not_found(
    project, admin_user, moderator, outsider, flagged
):
    with pytest.raises(Forbidden):
        flag_resolve(actor=moderator, image=flagged["noted"], action="relabel", category_key="weapons", note="x")
    with pytest.raises(NotFound):
        flag_resolve(actor=outsider, image=flagged["noted"], action="dismiss")
    with pytest.raises(Forbidden):
        flag_resolve(
            actor=moderator, image=flagged["noted"], action="guideline", category_key="weapons", guideline="Anything."
        )
    assert not FlagResolution.objects.exists() and not Adjudication.objects.exists()
    assert Category.objects.get(project=project, key="weapons").guideline.startswith("Firearms, knives")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"action": ""}, "action"),
        ({"action": "escalate"}, "action"),
        ({"action": "relabel", "category_key": "weapons"}, "note"),
        ({"action": "relabel", "note": "why"}, "category"),
        ({"action": "relabel", "category_key": "unicorns", "note": "why"}, "category"),
        ({"action": "guideline", "guideline": "New text."}, "category"),
        ({"action": "guideline", "category_key": "weapons", "guideline": "  "}, "guideline"),
        ({"action": "dismiss", "note": "x" * 5001}, "note"),
    ],
)
def test_bad_resolutions_are_refused_naming_the_field(project, admin_user, flagged, kwargs, field):
    with pytest.raises(ApplicationError) as refused:
        flag_resolve(actor=admin_user, image=flagged["noted"], **kwargs)
    assert refused.value.extra == {"field": field}
    assert field in refused.value.message
    assert not FlagResolution.objects.exists() and not Adjudication.objects.exists()


def test_an_image_without_open_flags_cannot_be_resolved(project, admin_user, flagged):
    with pytest.raises(Conflict):
        flag_resolve(actor=admin_user, image=flagged["clean"], action="dismiss")
    flag_resolve(actor=admin_user, image=flagged["bare"], action="dismiss")
    with pytest.raises(Conflict):
        flag_resolve(actor=admin_user, image=flagged["bare"], action="dismiss")
    assert FlagResolution.objects.count() == 1


# --- the API -----------------------------------------------------------------------------------


def test_the_api_lists_open_flags_and_resolves_them(api, project, admin_user, moderator, flagged):
    listed = api(admin_user).get(reverse("api-flags", args=[project.slug]))
    assert listed.status_code == 200
    rows = {row["image_id"]: row for row in listed.json()}
    assert set(rows) == {flagged["noted"].pk, flagged["bare"].pk}
    noted = rows[flagged["noted"].pk]
    assert (noted["label"], noted["label_source"]) == ("neutral", "consensus")
    assert [(f["user"], f["note"]) for f in noted["flags"]] == [(moderator.username, "Is a toy gun a weapon?")]
    assert noted["blurred_url"] == reverse("image-file", args=[flagged["noted"].pk, "blurred"])

    url = reverse("api-flag-resolutions", args=[flagged["noted"].pk])
    bad = api(admin_user).post(url, {"action": "relabel", "category": "weapons"}, format="json")
    assert bad.status_code == 400 and bad.json()["extra"] == {"field": "note"}
    made = api(admin_user).post(
        url, {"action": "relabel", "category": "weapons", "note": "Replicas count."}, format="json"
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["action"], body["category"], body["resolved_by"], body["note"]) == (
        "relabel",
        "weapons",
        admin_user.username,
        "Replicas count.",
    )
    assert body["adjudication"] == Adjudication.objects.get().pk
    assert [r["id"] for r in api(admin_user).get(url).json()] == [body["id"]]
    assert [row["image_id"] for row in api(admin_user).get(reverse("api-flags", args=[project.slug])).json()] == [
        flagged["bare"].pk
    ]
    assert api(admin_user).post(url, {"action": "dismiss"}, format="json").status_code == 409
    assert api(moderator).get(reverse("api-flags", args=[project.slug])).status_code == 403
    refused = api(moderator).post(
        reverse("api-flag-resolutions", args=[flagged["bare"].pk]), {"action": "dismiss"}, format="json"
    )
    assert refused.status_code == 403 and FlagResolution.objects.count() == 1


# --- the pages ---------------------------------------------------------------------------------


def test_the_flag_queue_page_shows_the_notes_and_resolves_by_form(client, project, admin_user, flagged):
    client.force_login(admin_user)
    url = reverse("project-flags", args=[project.slug])
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Is a toy gun a weapon?" in html and "no note" in html
    assert reverse("image-file", args=[flagged["noted"].pk, "blurred"]) in html
    assert reverse("image-file", args=[flagged["noted"].pk, "original"]) not in html, "nothing unblurred by default"

    resolve = reverse("project-flags-resolve", args=[project.slug, flagged["bare"].pk])
    refused = client.post(resolve, {"note": "forgot the action"}, follow=True)
    assert "action is required" in refused.content.decode() and not FlagResolution.objects.exists()
    done = client.post(resolve, {"action": "dismiss", "note": "Nothing to see."}, follow=True)
    assert done.redirect_chain[-1][0] == url
    html = done.content.decode()
    assert f"Flags on image {flagged['bare'].pk} dismissed." in html
    assert FlagResolution.objects.get().note == "Nothing to see."
    assert 'data-resolution-id="' in html and "Nothing to see." in html


def test_the_dashboard_counts_open_flags_and_links_to_the_queue(client, project, admin_user, flagged):
    client.force_login(admin_user)
    queue_url = reverse("project-flags", args=[project.slug])

    def tile() -> str:
        html = client.get(reverse("project-dashboard", args=[project.slug])).content.decode()
        start = html.index('<a class="tile" id="open-flags"')
        return html[start : html.index("</a>", start)]

    assert f'href="{queue_url}"' in tile() and '<span class="tile-value">2</span>' in tile()
    assert "on 2 items" in tile()
    flag_resolve(actor=admin_user, image=flagged["bare"], action="dismiss")
    assert '<span class="tile-value">1</span>' in tile() and "on 1 item " in tile()


def test_the_review_form_preselects_no_category_and_refuses_a_submit_without_one(
    client, project, admin_user, make_user, flagged
):
    second = make_user("second")
    membership_set(project=project, user=second, role="moderator")
    project.overlap = 2
    project.save()
    QueueItem.objects.filter(image=flagged["noted"]).update(done=False)
    lease = queue_next(user=second, project=project)
    assert lease.item.image_id == flagged["noted"].pk
    annotation_submit(user=second, item_id=lease.item.pk, client_key="disagree", category_key="violence")
    client.force_login(admin_user)
    html = client.get(reverse("project-review", args=[project.slug])).content.decode()
    form = html[html.index('class="adjudicate"') :]
    form = form[: form.index("</form>")]
    assert '<option value="" selected>' in form and form.count(" selected") == 1
    assert f'data-viewer-image="{flagged["noted"].pk}"' in html
    url = reverse("project-review-adjudicate", args=[project.slug, flagged["noted"].pk])
    refused = client.post(url, {"category": "", "reason": "both are wrong"}, follow=True)
    assert "category is required" in refused.content.decode()
    assert not Adjudication.objects.exists()


def test_resolutions_go_with_their_image_and_project(project, admin_user, flagged):
    flag_resolve(actor=admin_user, image=flagged["noted"], action="relabel", category_key="weapons", note="Real.")
    flag_resolve(actor=admin_user, image=flagged["bare"], action="dismiss")
    flagged["noted"].delete()
    assert list(FlagResolution.objects.values_list("action", flat=True)) == ["dismiss"]
    project.delete()
    assert not FlagResolution.objects.exists()
