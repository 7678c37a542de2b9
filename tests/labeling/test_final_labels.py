"""One final label per image: training, the class balance, the image API, the reports and
all five exports agree on it."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections import Counter

import pytest
from django.urls import reverse

from labeling.models import Annotation, Image, Job
from labeling.selectors.images import class_balance
from labeling.selectors.labels import final_labels_of, training_labels
from labeling.selectors.reports import agreement_report, annotator_disagreements
from labeling.services.adjudication import adjudicate
from labeling.services.ingest import import_job_create, import_job_run
from labeling.services.projects import membership_set
from labeling.services.queue import annotation_submit, annotation_undo, queue_next
from labeling.services.rounds import round_start_initial
from tests import imagefiles as f

pytestmark = pytest.mark.django_db


def label_all(user, project, key_of) -> list[int]:
    """``user`` labels every item the queue hands them; returns the image ids in order."""
    seen = []
    while (lease := queue_next(user=user, project=project)) is not None:
        image_id = lease.item.image_id
        annotation_submit(user=user, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=key_of(image_id))
        seen.append(image_id)
    return seen


@pytest.fixture
def mixed(project, admin_user, make_user, tmp_path):
    """12 images: 10 labeled by two moderators (overlap 2), among them a gold item one
    moderator labeled twice, an undone and corrected label and an adjudicated
    disagreement; of the 2 left, one auto-accepted by the head and one with only its
    import pre-label. Returns the expected final label ``{image_id: (key, source)}``."""
    project.overlap, project.batch_size, project.eval_fraction, project.gold_rate = 2, 10, 0.0, 0.0
    project.auto_start = False
    project.save()
    for seed in range(12):
        (tmp_path / f"{seed:02d}.jpg").write_bytes(f.jpeg_bytes(seed))
    import_job_run(job_id=import_job_create(project=project, paths=[str(tmp_path)], source="vendor").pk)
    round_ = round_start_initial(project=project)
    queued = set(round_.items.values_list("image_id", flat=True))
    assert len(queued) == 10
    m1, m2 = make_user("m1"), make_user("m2")
    for user in (m1, m2):
        membership_set(project=project, user=user, role="moderator")

    ids = sorted(queued)
    gold, disputed, corrected = ids[0], ids[1], ids[2]
    base = {pk: "violence" if pk % 2 else "neutral" for pk in ids}

    # m1 labels the gold item neutral, m2 violence: a tie, which goes to the category
    # earlier in the taxonomy (violence).
    label_all(m1, project, lambda pk: {gold: "neutral", disputed: "drugs"}.get(pk, base[pk]))
    label_all(m2, project, lambda pk: {gold: "violence", disputed: "nsfw", corrected: "drugs"}.get(pk, base[pk]))
    # The gold item comes back to m1 in a later round and m1 answers neutral again:
    # one moderator, one vote.
    Annotation.objects.create(
        image_id=gold,
        user=m1,
        round=round_,
        kind=Annotation.Kind.LABEL,
        category=project.categories.get(key="neutral"),
        client_key="gold-again",
    )
    # m2 labeled ``corrected`` drugs, undoes it and answers weapons... then undoes that
    # too and answers the base label: only the last answer counts.
    last = Annotation.objects.filter(user=m2, kind="label").order_by("-pk").first()
    if last.image_id == corrected:
        annotation_undo(user=m2, project=project, client_key=uuid.uuid4().hex)
        lease = queue_next(user=m2, project=project)
        assert lease.item.image_id == corrected
        annotation_submit(user=m2, item_id=lease.item.pk, client_key=uuid.uuid4().hex, category_key=base[corrected])
    else:
        Annotation.objects.create(
            image_id=corrected,
            user=m2,
            kind=Annotation.Kind.RETRACT,
            client_key="undo",
            supersedes=Annotation.objects.get(user=m2, image_id=corrected, kind="label"),
        )
        Annotation.objects.create(
            image_id=corrected,
            user=m2,
            kind=Annotation.Kind.LABEL,
            client_key="again",
            category=project.categories.get(key=base[corrected]),
        )
    adjudicate(actor=admin_user, image=Image.objects.get(pk=disputed), category_key="weapons", reason="a knife")

    rest = sorted(set(Image.objects.filter(project=project, status="accepted").values_list("pk", flat=True)) - queued)
    auto, imported = rest
    categories = {c.key: c for c in project.categories.all()}
    Image.objects.filter(pk=auto).update(model_label=categories["nsfw"], source_label=categories["drugs"])
    Image.objects.filter(pk=imported).update(source_label=categories["drugs"])

    expected = {pk: (base[pk], "consensus") for pk in ids}
    expected[gold] = ("violence", "consensus")
    expected[disputed] = ("weapons", "adjudicated")
    expected[auto] = ("nsfw", "model")
    expected[imported] = ("drugs", "import")
    return expected


def run_export(client, project, fmt: str, capture) -> bytes:
    with capture(execute=True):
        response = client.post(reverse("api-exports", args=[project.slug]), {"format": fmt}, format="json")
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "succeeded", job.error
    return b"".join(client.get(reverse("api-export-download", args=[job.pk])).streaming_content)


def test_every_consumer_agrees_on_the_final_label(api, project, admin_user, mixed, django_capture_on_commit_callbacks):
    expected = mixed
    human = {pk: key for pk, (key, source) in expected.items() if source in ("consensus", "adjudicated")}

    final = final_labels_of(project=project, image_ids=list(expected))
    assert {pk: (label.category.key, label.source) for pk, label in final.items()} == expected

    assert {pk: label.category.key for pk, label in training_labels(project=project).items()} == human

    balance = class_balance(project=project)
    rows = {row["key"]: row for row in balance["categories"]}
    assert {k: r["consensus"] for k, r in rows.items() if r["consensus"]} == Counter(human.values())
    assert {k: r["total"] for k, r in rows.items() if r["total"]} == Counter(k for k, _ in expected.values())
    assert {k: r["auto_accepted"] for k, r in rows.items() if r["auto_accepted"]} == {"nsfw": 1}
    assert (balance["labeled"], balance["human_labeled"], balance["unlabeled"]) == (12, 10, 0)

    client = api(admin_user)
    listed = client.get(reverse("api-project-images", args=[project.slug])).json()["results"]
    assert {r["id"]: (r["metadata"]["category"], r["metadata"]["label_source"]) for r in listed} == expected
    assert all(r["metadata"]["verified"] == (r["id"] in human) for r in listed)

    capture = django_capture_on_commit_callbacks
    jsonl = [json.loads(line) for line in run_export(client, project, "jsonl", capture).decode().splitlines()]
    assert {r["image_id"]: (r["label"], r["label_source"]) for r in jsonl} == expected
    rows_csv = list(csv.DictReader(io.StringIO(run_export(client, project, "csv", capture).decode())))
    assert {int(r["image_id"]): (r["label"], r["label_source"]) for r in rows_csv} == expected
    tasks = json.loads(run_export(client, project, "labelstudio", capture))
    assert {
        t["id"]: (t["annotations"][0]["result"][0]["value"]["choices"][0], t["annotations"][0]["meta"]["label_source"])
        for t in tasks
    } == expected
    folder = zipfile.ZipFile(io.BytesIO(run_export(client, project, "imagefolder", capture)))
    assert {int(name.split("/")[1].split(".")[0]): name.split("/")[0] for name in folder.namelist()} == {
        pk: key for pk, (key, _) in expected.items()
    }
    hf = zipfile.ZipFile(io.BytesIO(run_export(client, project, "huggingface", capture)))
    metadata = [
        json.loads(line)
        for name in hf.namelist()
        if name.endswith("metadata.jsonl")
        for line in hf.read(name).decode().splitlines()
    ]
    assert {r["image_id"]: (r["label"], r["label_source"]) for r in metadata} == expected


def test_reports_measure_moderators_against_the_final_label(project, mixed):
    expected = mixed
    gold = next(
        pk
        for pk, (key, source) in expected.items()
        if source == "consensus"
        and key == "violence"
        and Annotation.objects.filter(image_id=pk, client_key="gold-again").exists()
    )
    disputed = next(pk for pk, (_, source) in expected.items() if source == "adjudicated")
    rows = {row["image_id"]: row for row in annotator_disagreements(project=project)}
    assert rows[gold]["votes"] == {"violence": 1, "neutral": 1}, "one vote per moderator"
    assert rows[gold]["label"] == "violence"
    assert (rows[disputed]["adjudicated"], rows[disputed]["label"]) == ("weapons", "weapons")

    report = agreement_report(project=project)
    per_user = {row["user"]: row for row in report["annotators"]}
    # Against the final labels m1 is wrong on the gold item and the adjudicated one;
    # m2 only on the adjudicated one.
    assert per_user["m1"]["accuracy_vs_consensus"] == pytest.approx(8 / 10)
    assert per_user["m2"]["accuracy_vs_consensus"] == pytest.approx(9 / 10)


def test_moderators_see_only_import_pre_labels(api, project, mixed):
    """Moderators label independently: the image API never shows them others' answers."""
    from labeling.models import Membership

    moderator = Membership.objects.get(project=project, user__username="m1").user
    listed = api(moderator).get(reverse("api-project-images", args=[project.slug])).json()
    shown = {r["id"]: (r["metadata"]["category"], r["metadata"]["label_source"]) for r in listed["results"]}
    assert {pk: v for pk, v in shown.items() if v[0]} == {
        pk: ("drugs", "import") for pk, (_, source) in mixed.items() if source in ("model", "import")
    }


@pytest.mark.parametrize("page", ["project-detail", "project-dashboard"])
def test_pages_say_how_many_labels_people_decided(client, project, admin_user, mixed, page):
    client.force_login(admin_user)
    html = client.get(reverse(page, args=[project.slug])).content.decode()
    assert "Labeled 12 (" in html
    assert '<span data-count="human">10</span> by people, 1 auto-accepted, 1 import pre-labels' in html
