"""Moderators labeling at the same time over HTTP, against a live server.

Each moderator is a thread with its own keep-alive connection and API token, asking for
the next item and answering it until the queue is empty. Some answers are sent twice
on purpose: again after the first reply, and from two connections at once. Afterwards
the database must show every item labeled exactly ``overlap`` times, by different
moderators, never handed out beyond ``overlap``, and one annotation per client key.

On PostgreSQL the hand-outs really overlap (``SELECT ... FOR UPDATE SKIP LOCKED``); on
SQLite every write transaction waits for the database's write lock, and the same
invariants must hold with serialised writes.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db.models import Count

from labeling.models import Annotation, Assignment, Membership, QueueItem
from labeling.services.projects import membership_set, project_create
from labeling.services.rounds import round_start_initial
from tests.labeling.factories import ImageFactory

ON_POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]
CATEGORIES = ["violence", "drugs", "nsfw", "neutral", "hateful_memes", "weapons"]


class Client:
    """One keep-alive HTTP connection to the live server, authenticated by a token."""

    def __init__(self, base_url: str, token: str):
        url = urlparse(base_url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def post(self, path: str, payload: dict | None = None) -> tuple[int, dict | None]:
        body = json.dumps(payload).encode() if payload is not None else None
        self.conn.request("POST", path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, {"body": data[:500].decode(errors="replace")}

    def close(self) -> None:
        self.conn.close()


@dataclass
class Moderator:
    username: str
    token: str
    fresh: list[int] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)
    progress: list[tuple[dict, int]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def submit_twice_at_once(base_url: str, moderator: Moderator, path: str, payload: dict) -> list:
    """The same answer from two connections at once, as a client retrying too early would."""
    replies: list = [None, None]
    start = threading.Barrier(2)

    def send(slot: int) -> None:
        client = Client(base_url, moderator.token)
        try:
            start.wait()
            replies[slot] = client.post(path, payload)
        finally:
            client.close()

    threads = [threading.Thread(target=send, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return replies


def label_until_empty(
    base_url: str, slug: str, moderator: Moderator, start: threading.Barrier, resend_every: int, race_every: int
) -> None:
    client = Client(base_url, moderator.token)
    try:
        start.wait()
        for n in range(10_000):
            status, lease = client.post(f"/api/projects/{slug}/queue/next/")
            if status == 204:
                return
            if status != 200:
                moderator.unexpected.append(f"next: {status} {lease}")
                return
            if not lease["resumed"]:
                moderator.fresh.append(lease["item_id"])
            moderator.progress.append((lease["progress"], len(moderator.answered)))
            path = f"/api/queue/items/{lease['item_id']}/submit/"
            payload = {"client_key": uuid.uuid4().hex, "kind": "label", "category": CATEGORIES[n % len(CATEGORIES)]}
            if race_every and n % race_every == race_every - 1:
                replies = submit_twice_at_once(base_url, moderator, path, payload)
                statuses = sorted(reply[0] for reply in replies)
                ids = {reply[1]["id"] for reply in replies if reply[0] in (200, 201)}
                if statuses != [200, 201] or len(ids) != 1:
                    moderator.unexpected.append(f"same answer twice at once: {replies}")
                    return
                moderator.answered[payload["client_key"]] = ids.pop()
                continue
            status, annotation = client.post(path, payload)
            if status != 201:
                moderator.unexpected.append(f"submit: {status} {annotation}")
                return
            moderator.answered[payload["client_key"]] = annotation["id"]
            if resend_every and n % resend_every == 0:
                again, repeated = client.post(path, payload)
                if again != 200 or repeated["id"] != annotation["id"]:
                    moderator.unexpected.append(f"resent submit: {again} {repeated}")
                    return
        moderator.unexpected.append("the queue never ran out")
    except Exception as exc:  # reported by the test rather than lost in the thread
        moderator.unexpected.append(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def run_moderators(
    live_server, monkeypatch, *, moderators: int, items: int, overlap: int, resend_every: int = 5, race_every: int = 7
) -> tuple:
    from rest_framework.authtoken.models import Token

    completed_rounds: list[int] = []
    monkeypatch.setattr(
        "labeling.services.rounds.retrain_job_queue",
        lambda *, project, reason="", user=None: completed_rounds.append(project.pk),
    )
    project = project_create(
        slug="busy", name="Busy", overlap=overlap, batch_size=items, eval_fraction=0.0, gold_rate=0.2
    )
    ImageFactory.create_batch(items, project=project)
    round_ = round_start_initial(project=project)
    gold = list(round_.items.order_by("pk").values_list("pk", flat=True)[: max(1, items // 10)])
    QueueItem.objects.filter(pk__in=gold).update(is_gold=True)

    from django.contrib.auth import get_user_model

    people = []
    for i in range(moderators):
        user = get_user_model().objects.create_user(username=f"moderator{i}", password="pw")
        membership_set(project=project, user=user, role=Membership.Role.MODERATOR)
        people.append(Moderator(user.username, Token.objects.create(user=user).key))

    start = threading.Barrier(moderators)
    threads = [
        threading.Thread(
            target=label_until_empty, args=(live_server.url, project.slug, m, start, resend_every, race_every)
        )
        for m in people
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads), "a moderator thread hung"
    return project, people, completed_rounds


def assert_invariants(project, people: list[Moderator], completed_rounds: list[int], *, items: int, overlap: int):
    problems = [f"{m.username}: {p}" for m in people for p in m.unexpected]
    assert not problems, problems

    for m in people:
        twice = [item for item, n in Counter(m.fresh).items() if n > 1]
        assert not twice, f"{m.username} was handed items {twice} twice"

    gold = set(QueueItem.objects.filter(round__project=project, is_gold=True).values_list("pk", flat=True))
    gold_images = set(QueueItem.objects.filter(pk__in=gold).values_list("image", flat=True))
    handed = Counter(
        dict(
            Assignment.objects.filter(item__round__project=project)
            .values("item")
            .annotate(n=Count("pk"))
            .values_list("item", "n")
        )
    )
    regular = {item: n for item, n in handed.items() if item not in gold}
    assert regular and max(regular.values()) <= overlap, (
        f"items handed beyond overlap: {Counter(regular).most_common(3)}"
    )
    assert all(n <= len(people) for item, n in handed.items() if item in gold), "gold: once per moderator"
    assert sum(len(m.fresh) for m in people) == sum(handed.values())
    assert sum(regular.values()) == (items - len(gold)) * overlap

    labels = Annotation.objects.filter(image__project=project, kind=Annotation.Kind.LABEL)
    per_image = Counter(labels.values_list("image", flat=True))
    assert {n for image, n in per_image.items() if image not in gold_images} == {overlap}, (
        "every regular item has exactly `overlap` labels"
    )
    assert labels.count() == sum(handed.values())
    per_image_user = Counter(labels.values_list("image", "user"))
    assert max(per_image_user.values()) == 1, "no moderator labeled an item twice"

    queue = QueueItem.objects.filter(round__project=project)
    assert queue.count() == items
    assert set(queue.exclude(pk__in=gold).values_list("labels_count", "done")) == {(overlap, True)}
    for item in queue.filter(pk__in=gold):
        assert (item.labels_count, item.done) == (handed.get(item.pk, 0), False), "gold items never complete"

    keys = Counter(labels.values_list("user__username", "client_key"))
    assert max(keys.values()) == 1, "a client key recorded twice"
    stored = {(u, k): pk for u, k, pk in labels.values_list("user__username", "client_key", "pk")}
    answered = {(m.username, k): pk for m in people for k, pk in m.answered.items()}
    assert answered == stored, "every accepted answer is stored once, under the id it was answered with"
    assert completed_rounds == [project.pk], "the round completed exactly once"

    for m in people:
        done_seen = [progress["round_done"] for progress, _ in m.progress]
        assert done_seen == sorted(done_seen) and done_seen[-1] < items, f"{m.username} saw {done_seen}"
        assert {progress["round_items"] for progress, _ in m.progress} == {items}
        assert [progress["my_labels"] for progress, _ in m.progress] == [mine for _, mine in m.progress]


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="needs PostgreSQL: runs in the make test-services pass")
def test_moderators_at_once_on_postgres_never_share_an_item_beyond_overlap(live_server, monkeypatch):
    project, people, completed = run_moderators(live_server, monkeypatch, moderators=4, items=60, overlap=2)
    assert_invariants(project, people, completed, items=60, overlap=2)


def test_serialised_writes_keep_the_same_invariants(live_server, monkeypatch):
    project, people, completed = run_moderators(live_server, monkeypatch, moderators=3, items=24, overlap=2)
    assert_invariants(project, people, completed, items=24, overlap=2)
