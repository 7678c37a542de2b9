"""The queue over the API: next, submit, undo, leases, overlap, idempotency."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Annotation, Assignment, QueueItem, Round
from labeling.services.rounds import round_start_initial
from tests.labeling.factories import ImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(project):
    project.overlap = 2
    project.batch_size = 6
    project.eval_fraction = 0.0
    project.gold_rate = 0.0
    project.save()
    ImageFactory.create_batch(6, project=project)
    return round_start_initial(project=project)


def next_item(client, project):
    response = client.post(reverse("api-queue-next", args=[project.slug]))
    assert response.status_code in (200, 204), response.content
    return response.json() if response.status_code == 200 else None


def submit(client, item_id, category="violence", key=None, kind="label"):
    return client.post(
        reverse("api-queue-submit", args=[item_id]),
        {"client_key": key or uuid.uuid4().hex, "kind": kind, "category": category},
        format="json",
    )


def test_round_zero_is_random_without_embeddings(queued):
    assert queued.number == 0 and queued.strategy == "random"
    assert queued.items.count() == 6


def test_next_submit_and_overlap(api, project, queued, moderator, make_user):
    from labeling.services.projects import membership_set

    other = make_user("other")
    membership_set(project=project, user=other, role="moderator")
    a, b = api(moderator), api(other)

    seen = {moderator: [], other: []}
    for _ in range(6):
        for user, client in ((moderator, a), (other, b)):
            lease = next_item(client, project)
            assert lease["blurred_url"].endswith("/blurred/") and lease["resumed"] is False
            assert submit(client, lease["item_id"]).status_code == 201
            seen[user].append(lease["item_id"])
    assert len(set(seen[moderator])) == 6 and len(set(seen[other])) == 6
    assert next_item(a, project) is None
    assert all(item.labels_count == 2 and item.done for item in QueueItem.objects.all())


def test_a_reload_gets_the_same_lease_and_a_retry_does_not_double(api, project, queued, moderator):
    client = api(moderator)
    first = next_item(client, project)
    again = next_item(client, project)
    assert again["item_id"] == first["item_id"] and again["resumed"] is True
    key = uuid.uuid4().hex
    assert submit(client, first["item_id"], key=key).status_code == 201
    assert submit(client, first["item_id"], key=key).status_code == 200
    assert Annotation.objects.filter(user=moderator).count() == 1
    assert QueueItem.objects.get(pk=first["item_id"]).labels_count == 1
    second = submit(client, first["item_id"])
    assert second.status_code == 409 and second.json()["code"] == "already_answered"


def test_every_kind_of_retry_gets_its_first_answer(api, project, queued, moderator, make_user):
    """Flags, skips and labels that filled the item: a retry is answered 200 with the first annotation."""
    from labeling.services.projects import membership_set

    client = api(moderator)
    lease = next_item(client, project)
    answers = {}
    for kind, category in (("flag", ""), ("skip", "")):
        key = f"{kind}-key"
        first = submit(client, lease["item_id"], kind=kind, category=category, key=key)
        assert first.status_code == 201, first.content
        answers[kind] = first.json()["id"]
        retry = submit(client, lease["item_id"], kind=kind, category=category, key=key)
        assert retry.status_code == 200 and retry.json()["id"] == answers[kind]
    assert Annotation.objects.filter(user=moderator).count() == 2

    # The second of two labels fills the item; its retry is not "overlap reached".
    other = make_user("other")
    membership_set(project=project, user=other, role="moderator")
    mine = next_item(client, project)
    for _ in range(6):
        theirs = next_item(api(other), project)
        assert submit(api(other), theirs["item_id"]).status_code == 201
        if theirs["item_id"] == mine["item_id"]:
            break
    assert QueueItem.objects.get(pk=mine["item_id"]).labels_count == 1
    assert submit(client, mine["item_id"], key="last").status_code == 201
    assert QueueItem.objects.get(pk=mine["item_id"]).done
    retry = submit(client, mine["item_id"], key="last")
    assert retry.status_code == 200


def test_an_item_not_handed_out_is_refused(api, project, queued, moderator):
    item = QueueItem.objects.filter(round=queued).first()
    response = submit(api(moderator), item.pk)
    assert response.status_code == 409 and response.json()["code"] == "not_assigned"
    flag = submit(api(moderator), item.pk, kind="flag", category="")
    assert flag.status_code == 409 and flag.json()["code"] == "not_assigned"
    assert not Annotation.objects.exists()


def test_undo_supersedes_and_hands_the_item_back(api, project, queued, moderator):
    client = api(moderator)
    lease = next_item(client, project)
    submit(client, lease["item_id"], category="drugs")
    response = client.post(reverse("api-queue-undo", args=[project.slug]), {"client_key": "undo-1"}, format="json")
    assert response.status_code == 200 and response.json()["kind"] == "retract"
    assert Annotation.objects.filter(user=moderator).count() == 2, "append-only: nothing deleted"
    assert QueueItem.objects.get(pk=lease["item_id"]).labels_count == 0
    back = next_item(client, project)
    assert back["item_id"] == lease["item_id"] and back["resumed"] is True
    assert submit(client, lease["item_id"], category="weapons").status_code == 201
    from labeling.selectors.labels import final_labels_of

    final = final_labels_of(project=project, image_ids=[lease["image_id"]])[lease["image_id"]]
    assert (final.category.key, final.source) == ("weapons", "consensus")


def test_expired_lease_returns_the_item_but_never_to_the_same_moderator(api, project, queued, moderator, make_user):
    from labeling.services.projects import membership_set

    project.overlap = 1
    project.save()
    client = api(moderator)
    lease = next_item(client, project)
    Assignment.objects.filter(item_id=lease["item_id"]).update(expires=timezone.now() - timedelta(seconds=1))
    others = []
    for i in range(2):
        user = make_user(f"m{i}")
        membership_set(project=project, user=user, role="moderator")
        others.append(next_item(api(user), project)["item_id"])
    assert lease["item_id"] in others, "the expired item went back into the queue"
    mine = next_item(client, project)
    assert mine["item_id"] != lease["item_id"]


def test_skip_and_flag(api, project, queued, moderator):
    client = api(moderator)
    lease = next_item(client, project)
    assert submit(client, lease["item_id"], kind="flag", category="").status_code == 201
    assert next_item(client, project)["item_id"] == lease["item_id"], "a flag does not end the lease"
    assert submit(client, lease["item_id"], kind="skip", category="").status_code == 201
    assert QueueItem.objects.get(pk=lease["item_id"]).labels_count == 0
    assert next_item(client, project)["item_id"] != lease["item_id"]


def test_bad_input_is_named(api, project, queued, moderator, outsider):
    client = api(moderator)
    lease = next_item(client, project)
    bad = submit(client, lease["item_id"], category="kittens")
    assert bad.status_code == 400 and "kittens" in bad.json()["message"]
    missing = client.post(reverse("api-queue-submit", args=[lease["item_id"]]), {"kind": "label"}, format="json")
    assert missing.status_code == 400 and "client_key" in missing.json()["message"]
    assert api(outsider).post(reverse("api-queue-next", args=[project.slug])).status_code == 404
    stranger = submit(api(outsider), lease["item_id"])
    assert stranger.status_code == 404


def test_completing_a_round_closes_it_and_queues_retraining(
    api, project, queued, moderator, django_capture_on_commit_callbacks
):
    from labeling.errors import ApplicationError
    from labeling.models import Job

    project.overlap = 1
    project.save()
    client = api(moderator)
    for _ in range(5):
        submit(client, next_item(client, project)["item_id"])
    last = next_item(client, project)
    with pytest.raises(ApplicationError, match="No embeddings"), django_capture_on_commit_callbacks(execute=True):
        submit(client, last["item_id"])  # the eager chain raises here; a worker would only record it
    assert Round.objects.get(number=0).status == "closed"
    job = Job.objects.get(kind="retrain")
    assert job.status == "failed" and "embeddings" in job.error, "no backbone yet: the failure is shown"


def test_gold_items_go_to_every_moderator_and_never_hold_up_the_round(
    api, project, queued, admin_user, moderator, make_user, monkeypatch
):
    from labeling.services.adjudication import gold_set
    from labeling.services.projects import membership_set
    from tests.labeling.factories import ImageFactory

    project.overlap, project.gold_rate = 1, 0.5
    project.save()
    monkeypatch.setattr("labeling.services.queue.random.random", lambda: 0.0)  # the gold draw always wins
    gold_image = ImageFactory(project=project)
    gold_set(actor=admin_user, image=gold_image, category_key="neutral")
    gold_item = QueueItem.objects.get(image=gold_image, is_gold=True)
    users = [moderator]
    for i in range(2):
        user = make_user(f"g{i}")
        membership_set(project=project, user=user, role="moderator")
        users.append(user)
    got_gold = set()
    active = list(users)
    while active:
        for user in list(active):
            client = api(user)
            lease = next_item(client, project)
            if lease is None:
                active.remove(user)
                continue
            if lease["item_id"] == gold_item.pk:
                got_gold.add(user.pk)
            assert submit(client, lease["item_id"]).status_code == 201
    assert got_gold == {u.pk for u in users}, "every moderator sees the gold item, beyond the overlap of 1"
    assert QueueItem.objects.get(pk=gold_item.pk).labels_count == 3
    assert Round.objects.get(number=0).status == "closed", "the gold item does not keep the round open"


def test_each_lease_names_the_next_blurred_preview_to_preload(api, project, queued, moderator):
    client = api(moderator)
    lease = next_item(client, project)
    for _ in range(5):
        assert lease["next_blurred_url"] and lease["next_blurred_url"].endswith("/blurred/")
        submit(client, lease["item_id"])
        following = next_item(client, project)
        assert following["blurred_url"] == lease["next_blurred_url"]
        lease = following
    assert lease["next_blurred_url"] is None, "the last item has nothing after it"


def test_every_lease_carries_progress_that_matches_the_rows(api, project, queued, moderator, make_user, monkeypatch):
    """Round progress is right on both sides of the done/open split it counts from."""
    from labeling.services import queue
    from labeling.services.projects import membership_set

    monkeypatch.setattr(queue, "ROUND_DONE_SECONDS", 0)  # counted afresh for every lease

    other = make_user("other")
    membership_set(project=project, user=other, role="moderator")
    clients = {moderator: api(moderator), other: api(other)}
    labels = {moderator: 0, other: 0}
    for _ in range(6):
        for user, client in clients.items():
            lease = next_item(client, project)
            progress = lease["progress"]
            assert progress["round"] == 0 and progress["round_items"] == 6
            assert progress["round_done"] == QueueItem.objects.filter(round=queued, done=True).count()
            assert progress["my_labels"] == progress["my_labels_today"] == labels[user]
            assert submit(client, lease["item_id"]).status_code == 201
            labels[user] += 1
    assert QueueItem.objects.filter(round=queued, done=True).count() == 6
    # Next round's lease (none left) or the labeling page: the counts still agree.
    from labeling.services.queue import lease_status
    from labeling.services.wellbeing import reveal_record

    reveal_record(user=moderator, image=queued.items.first().image)  # labeled violence: sensitive
    status = lease_status(user=moderator, project=project)
    assert status["progress"]["my_labels"] == 6
    assert status["wellbeing"]["used"] == 1


def test_round_progress_is_counted_once_per_moment_own_labels_at_once(api, project, queued, moderator, make_user):
    from labeling.services import queue
    from labeling.services.projects import membership_set

    other = make_user("other")
    membership_set(project=project, user=other, role="moderator")
    a, b = api(moderator), api(other)
    first = next_item(a, project)
    assert submit(a, first["item_id"]).status_code == 201
    assert submit(b, next_item(b, project)["item_id"]).status_code == 201  # the same item: now done
    second = next_item(a, project)
    assert QueueItem.objects.filter(round=queued, done=True).count() == 1
    # Within ROUND_DONE_SECONDS everyone's progress is the count of a moment ago; the
    # moderator's own labels are counted at once.
    assert second["progress"]["round_done"] == first["progress"]["round_done"] == 0
    assert second["progress"]["my_labels"] == 1
    from django.core.cache import cache

    cache.clear()  # as if ROUND_DONE_SECONDS had passed
    assert queue.lease_status(user=moderator, project=project)["progress"]["round_done"] == 1


def test_status_counts_finished_items_at_once_and_leaves_undone_labels_out(
    api, project, queued, moderator, make_user, django_capture_on_commit_callbacks
):
    from labeling.services.projects import membership_set

    second = make_user("second")
    membership_set(project=project, user=second, role="moderator")
    first, other = api(moderator), api(second)
    status_url = reverse("api-queue-status", args=[project.slug])

    def progress(client):
        response = client.get(status_url)
        assert response.status_code == 200, response.content
        return response.json()["progress"]

    assert progress(first) == {"round": 0, "round_items": 6, "round_done": 0, "my_labels": 0, "my_labels_today": 0}
    lease = next_item(first, project)
    with django_capture_on_commit_callbacks(execute=True):
        assert submit(first, lease["item_id"]).status_code == 201
    assert progress(first)["my_labels"] == 1
    assert next_item(other, project)["item_id"] == lease["item_id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert submit(other, lease["item_id"]).status_code == 201
    # The item has its two labels: both moderators see it finished now, not seconds later.
    assert progress(first)["round_done"] == 1 and progress(other)["round_done"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        undone = first.post(reverse("api-queue-undo", args=[project.slug]), {"client_key": "undo-1"}, format="json")
    assert undone.status_code == 200
    after = progress(first)
    assert (after["my_labels"], after["my_labels_today"], after["round_done"]) == (0, 0, 0)
    assert progress(other)["my_labels"] == 1
