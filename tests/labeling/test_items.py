"""The item browser, the item page and corrections of past labels.

Filters are checked against the one final-label rule computed for every image
(``final_labels_of``); pages against the whole listing, sorted in Python.
"""

from __future__ import annotations

import math

import pytest
from django.urls import reverse

from labeling.errors import ApplicationError, Conflict, NotFound
from labeling.models import Adjudication, Annotation, Image, Membership, ModelVersion, Prediction, QueueItem, Round
from labeling.selectors import items as items_selector
from labeling.selectors.items import ItemQuery, item_get_for_user, items_page
from labeling.selectors.labels import final_labels_of
from labeling.services.corrections import annotation_correct
from labeling.services.projects import membership_set, project_create
from labeling.services.queue import annotation_undo
from tests.labeling.factories import ImageFactory

pytestmark = pytest.mark.django_db

KEYS = ["violence", "drugs", "nsfw", "neutral", "hateful_memes", "weapons"]


def label(image, user, key, *, round_=None, kind=Annotation.Kind.LABEL, n=[0]):  # noqa: B006
    n[0] += 1
    category = image.project.categories.get(key=key) if key else None
    return Annotation.objects.create(
        image=image, user=user, kind=kind, category=category, round=round_, client_key=f"setup-{n[0]}"
    )


@pytest.fixture
def browse(project, admin_user, moderator, make_user):
    """30 images: pre-labels, a head's predictions with tied confidences, two moderators'
    labels (agreeing, disagreeing, undone), an adjudication, an auto-accepted label,
    flags, rejected files and an evaluation split; round 0 holds the first 12."""
    second = make_user("second")
    membership_set(project=project, user=second, role=Membership.Role.MODERATOR)
    cats = {c.key: c for c in project.categories.all()}
    images = []
    for i in range(30):
        fields = {"project": project, "source_label": cats[KEYS[i % 3]] if i % 4 else None}
        if i in (7, 19):
            fields.update(status=Image.Status.REJECTED, reason="too_small")
        if i % 5 == 0:
            fields["split"] = Image.Split.EVAL
        images.append(ImageFactory(**fields))
    head = ModelVersion.objects.create(project=project, kind=ModelVersion.Kind.HEAD, is_active=True)
    for i, image in enumerate(images):
        if i == 29:
            continue  # never predicted
        confidence = [0.4, 0.6, 0.9][i % 3]  # ties, broken by id
        probabilities = {KEYS[i % 4]: confidence, "neutral" if i % 4 != 3 else "violence": 1 - confidence}
        Prediction.objects.create(
            image=image,
            model_version=head,
            category=cats[KEYS[i % 4]],
            confidence=confidence,
            entropy=-sum(p * math.log(p) for p in probabilities.values() if p > 0),
            probabilities=probabilities,
        )
    round0 = Round.objects.create(project=project, number=0, strategy="random")
    for image in images[:12]:
        QueueItem.objects.create(round=round0, image=image)
    mod = moderator
    label(images[1], mod, "drugs", round_=round0)
    label(images[1], second, "drugs", round_=round0)  # full agreement on drugs
    label(images[2], mod, "violence", round_=round0)
    label(images[2], second, "weapons", round_=round0)  # split: violence comes first in the taxonomy
    label(images[3], mod, "nsfw", round_=round0)
    undone = label(images[4], mod, "nsfw", round_=round0)
    Annotation.objects.create(
        image=images[4], user=mod, kind="retract", supersedes=undone, round=round0, client_key="setup-undo"
    )
    Adjudication.objects.create(image=images[2], category=cats["weapons"], decided_by=admin_user, reason="a rifle")
    label(images[5], second, None, kind=Annotation.Kind.FLAG)
    label(images[6], mod, None, kind=Annotation.Kind.FLAG)
    images[8].model_label = cats["weapons"]
    images[8].save()
    return {"images": images, "head": head, "second": second, "round": round0, "cats": cats}


def walk(user, project, query: ItemQuery, limit: int = 4) -> list[int]:
    """Every id the listing yields, page after page."""
    ids, cursor = [], None
    for _ in range(100):
        page = items_page(user=user, project=project, query=query, cursor=cursor, limit=limit)
        assert len(page.rows) <= limit
        ids += [row.image.pk for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("the listing never ended")


def test_keyset_pages_cover_every_image_once_in_order_and_ignore_later_rows(project, admin_user, browse):
    everyone = sorted(image.pk for image in browse["images"])
    assert walk(admin_user, project, ItemQuery()) == everyone
    assert walk(admin_user, project, ItemQuery(sort="-id"), limit=7) == everyone[::-1]
    first = items_page(user=admin_user, project=project, query=ItemQuery(), limit=10)
    assert first.count == 30
    ImageFactory(project=project)  # arrives between two pages: the next page starts where the first ended
    second = items_page(user=admin_user, project=project, query=ItemQuery(), cursor=first.next_cursor, limit=10)
    assert [r.image.pk for r in second.rows] == everyone[10:20]


@pytest.mark.parametrize("sort", ["confidence", "-confidence", "entropy", "-entropy"])
def test_sorting_by_the_heads_confidence_or_entropy_pages_by_value_then_id(project, admin_user, browse, sort):
    key = sort.lstrip("-")
    predictions = Prediction.objects.filter(model_version=browse["head"])
    expected = sorted(((getattr(p, key), p.image_id) for p in predictions), reverse=sort.startswith("-"))
    assert walk(admin_user, project, ItemQuery(sort=sort), limit=4) == [pk for _, pk in expected]


def test_filters_match_the_final_label_rule(project, admin_user, browse):
    images, cats = browse["images"], browse["cats"]
    ids = [image.pk for image in images]
    finals = final_labels_of(project=project, image_ids=ids)

    def listed(**filters) -> set[int]:
        return set(walk(admin_user, project, ItemQuery(**filters), limit=5))

    assert listed(status="rejected") == {images[7].pk, images[19].pk}
    assert listed(reason="too_small") == {images[7].pk, images[19].pk}
    assert listed(split="eval") == {images[i].pk for i in range(0, 30, 5)}
    assert listed(round=0) == set(ids[:12])
    assert listed(round=1) == set()
    assert listed(prelabel="drugs") == {im.pk for im in images if im.source_label_id == cats["drugs"].pk}
    assert listed(predicted="nsfw") == set(
        Prediction.objects.filter(category=cats["nsfw"]).values_list("image_id", flat=True)
    )
    assert listed(flagged=True) == {images[5].pk, images[6].pk}
    assert listed(flagged=False) == set(ids) - {images[5].pk, images[6].pk}
    for source in ("adjudicated", "consensus", "model", "import"):
        assert listed(label_source=source) == {pk for pk, f in finals.items() if f.source == source}, source
    assert listed(label_source="none") == set(ids) - set(finals)
    for key in KEYS:
        assert listed(label=key) == {pk for pk, f in finals.items() if f.category.key == key}, key
    assert listed(label="weapons") >= {images[2].pk, images[8].pk}  # adjudicated, auto-accepted
    assert listed(agreement="split") == {images[2].pk}
    assert listed(agreement="full") == {images[1].pk, images[3].pk}
    assert listed(label="drugs", agreement="full") == {images[1].pk}
    page = items_page(user=admin_user, project=project, query=ItemQuery(label="drugs"))
    assert page.count is None, "a listing checked a page at a time is not counted"
    assert items_page(user=admin_user, project=project, query=ItemQuery(sort="entropy", split="eval")).count == 6


def test_a_label_filter_scans_a_bounded_number_of_candidates_per_page(project, admin_user, browse, monkeypatch):
    monkeypatch.setattr(items_selector, "SCAN_LIMIT", 3)
    query = ItemQuery(label="violence")
    finals = final_labels_of(project=project, image_ids=[im.pk for im in browse["images"]])
    expected = sorted(pk for pk, f in finals.items() if f.category.key == "violence")
    page = items_page(user=admin_user, project=project, query=query, limit=50)
    assert page.scanned <= 3 and page.next_cursor is not None
    assert walk(admin_user, project, query, limit=50) == expected


def test_moderators_filter_what_they_may_see(project, moderator, browse):
    images = browse["images"]
    # A moderator's "label" is the pre-label, whatever the consensus or adjudication says.
    listed = set(walk(moderator, project, ItemQuery(label="violence"), limit=50))
    assert listed == {im.pk for im in images if im.source_label and im.source_label.key == "violence"}
    page = items_page(user=moderator, project=project, query=ItemQuery(), limit=50)
    assert all(row.label is None or row.label.source == "import" for row in page.rows)
    # Their own flags only.
    assert walk(moderator, project, ItemQuery(flagged=True)) == [images[6].pk]
    for name, value in (("label_source", "consensus"), ("agreement", "split")):
        with pytest.raises(ApplicationError) as refused:
            items_page(user=moderator, project=project, query=ItemQuery(**{name: value}))
        assert refused.value.extra == {"field": name}


def test_outsiders_get_not_found(project, outsider, browse):
    with pytest.raises(NotFound):
        items_page(user=outsider, project=project, query=ItemQuery())
    with pytest.raises(NotFound):
        item_get_for_user(user=outsider, project=project, image_id=browse["images"][0].pk)


# --- corrections -------------------------------------------------------------------------------


def final(project, image):
    return final_labels_of(project=project, image_ids=[image.pk])[image.pk]


def test_a_moderator_corrects_their_own_label_once_and_the_final_label_follows(project, moderator, browse):
    image = browse["images"][1]  # both moderators said drugs
    mine = Annotation.objects.get(image=image, user=moderator)
    correction, created = annotation_correct(
        actor=moderator, annotation_id=mine.pk, category_key="violence", client_key="fix-1"
    )
    assert created and correction.supersedes == mine and correction.user == moderator
    assert Annotation.objects.get(pk=mine.pk).category.key == "drugs", "the old label is never edited"
    after = final(project, image)
    # One vote each: violence and drugs tie, and violence comes first in the taxonomy.
    assert (after.category.key, after.annotators, after.votes) == ("violence", 2, {"violence": 1, "drugs": 1})
    again, created = annotation_correct(
        actor=moderator, annotation_id=mine.pk, category_key="violence", client_key="fix-1"
    )
    assert again == correction and not created
    assert Annotation.objects.filter(image=image).count() == 3
    with pytest.raises(Conflict) as stale:
        annotation_correct(actor=moderator, annotation_id=mine.pk, category_key="nsfw", client_key="fix-2")
    assert stale.value.extra == {"superseded_by": correction.pk}
    # A correction of the correction replaces it, still one vote.
    annotation_correct(actor=moderator, annotation_id=correction.pk, category_key="drugs", client_key="fix-3")
    assert final(project, image).votes == {"drugs": 2}


def test_an_admins_correction_replaces_the_moderators_vote_and_counts_once(project, admin_user, moderator, browse):
    image = browse["images"][3]  # only the moderator said nsfw
    theirs = Annotation.objects.get(image=image, user=moderator)
    correction, _ = annotation_correct(
        actor=admin_user, annotation_id=theirs.pk, category_key="neutral", client_key="admin-fix"
    )
    assert correction.user == admin_user, "the admin is recorded as the author"
    after = final(project, image)
    assert (after.category.key, after.source, after.annotators, after.votes) == (
        "neutral",
        "consensus",
        1,
        {"neutral": 1},
    )
    page = items_page(user=admin_user, project=project, query=ItemQuery(label="neutral"), limit=50)
    assert image.pk in {row.image.pk for row in page.rows}
    # The moderator's undo is for queue answers: it leaves the admin's correction alone.
    annotation_undo(user=moderator, project=project, client_key="undo-after-fix")
    assert not Annotation.objects.filter(kind="retract", supersedes=correction).exists()


def test_moderators_cannot_correct_others_labels_nor_outsiders_anything(project, moderator, outsider, browse):
    image = browse["images"][1]
    theirs = Annotation.objects.get(image=image, user=browse["second"])
    with pytest.raises(NotFound):
        annotation_correct(actor=moderator, annotation_id=theirs.pk, category_key="nsfw", client_key="nope")
    with pytest.raises(NotFound):
        annotation_correct(actor=outsider, annotation_id=theirs.pk, category_key="nsfw", client_key="nope")
    undone = Annotation.objects.get(image=browse["images"][4], kind="label")
    with pytest.raises(Conflict):
        annotation_correct(actor=moderator, annotation_id=undone.pk, category_key="drugs", client_key="nope")
    flag = Annotation.objects.get(image=browse["images"][6], kind="flag")
    with pytest.raises(ApplicationError, match="not a label"):
        annotation_correct(actor=moderator, annotation_id=flag.pk, category_key="drugs", client_key="nope")
    mine = Annotation.objects.get(image=image, user=moderator)
    with pytest.raises(ApplicationError) as unknown:
        annotation_correct(actor=moderator, annotation_id=mine.pk, category_key="kittens", client_key="nope")
    assert unknown.value.extra == {"field": "category"}
    assert final(project, image).votes == {"drugs": 2}


# --- the item page and the API -----------------------------------------------------------------


def test_item_page_shows_admins_everything_and_moderators_their_own(client, project, admin_user, moderator, browse):
    image = browse["images"][2]
    url = reverse("project-item", args=[project.slug, image.pk])
    client.force_login(admin_user)
    page = client.get(url)
    assert page.status_code == 200
    detail = page.context["item"]
    assert {e.annotation.user.username for e in detail.annotations} == {"mod", "second"}
    assert [a.reason for a in detail.adjudications] == ["a rifle"]
    assert detail.label.category.key == "weapons" and detail.prediction is not None
    assert b"/original/" not in page.content.split(b'id="item-config"')[0], "no original before a reveal"
    client.force_login(moderator)
    detail = client.get(url).context["item"]
    assert [e.annotation.user.username for e in detail.annotations] == ["mod"]
    assert detail.adjudications == [] and (detail.label is None or detail.label.source == "import")
    other = ImageFactory(project=project_create(slug="elsewhere"))
    assert client.get(reverse("project-item", args=[project.slug, other.pk])).status_code == 404
    assert client.get(reverse("project-item", args=[project.slug, 10**9])).status_code == 404


def test_item_browser_page_filters_and_pages(client, project, admin_user, browse):
    client.force_login(admin_user)
    url = reverse("project-items", args=[project.slug])
    first = client.get(url, {"limit": 10, "split": "pool"})
    assert first.status_code == 200
    rows = first.context["page"].rows
    assert len(rows) == 10 and all(row.image.split == "pool" for row in rows)
    assert b"/blurred/" in first.content and b"/original/" not in first.content and b"/thumbnail/" not in first.content
    following = client.get(first.context["next_url"])
    assert following.context["page"].rows[0].image.pk > rows[-1].image.pk
    bad = client.get(url, {"sort": "sideways"})
    assert bad.status_code == 200 and any("sort" in e for e in bad.context["errors"])


def test_image_list_api_pages_by_cursor_and_names_bad_input(api, project, admin_user, moderator, browse):
    url = reverse("api-project-images", args=[project.slug])
    body = api(admin_user).get(url, {"limit": 20, "sort": "-confidence"}).json()
    assert body["count"] == 29 and len(body["results"]) == 20
    assert body["results"][0]["prediction"]["confidence"] == 0.9
    rest = api(admin_user).get(body["next"]).json()
    assert len(rest["results"]) == 9 and rest["next"] is None and rest["count"] is None
    for params, field in (({"cursor": "abc"}, "cursor"), ({"label": "kittens"}, "label"), ({"round": "x"}, "round")):
        response = api(admin_user).get(url, params)
        assert response.status_code == 400 and field in str(response.json()), (params, response.json())
    refused = api(moderator).get(url, {"agreement": "split"})
    assert refused.status_code == 400 and refused.json()["extra"] == {"field": "agreement"}


def test_correction_api_is_idempotent_by_client_key(api, project, moderator, browse):
    mine = Annotation.objects.get(image=browse["images"][3], user=moderator)
    url = reverse("api-annotation-correct", args=[mine.pk])
    data = {"category": "neutral", "client_key": "api-fix"}
    first = api(moderator).post(url, data, format="json")
    retry = api(moderator).post(url, data, format="json")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json()["id"] == retry.json()["id"] and first.json()["supersedes"] == mine.pk
    missing = api(moderator).post(url, {"client_key": "k"}, format="json")
    assert missing.status_code == 400 and "category" in str(missing.json())
