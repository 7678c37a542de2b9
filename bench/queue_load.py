"""The labeling queue under load: many moderators calling next and submit over HTTP.

    python -m bench.queue_load [--seconds 60] [--moderators 32] [--images 100000]
                               [--database-url postgres://postgres@127.0.0.1:5432/veil_bench_queue]
                               [--workers 4] [--threads 4] [--conn-max-age 60]

Builds a throw-away PostgreSQL database (dropped and created again; its name must
contain ``bench``), migrates it, bulk-creates a project of ``--images`` accepted images
with overlap 2, starts round 0 over all of them through ``round_start_initial`` and adds
``--moderators`` moderators with API tokens. Then it serves the app with gunicorn on a
free port of 127.0.0.1 (``moderation.settings.production``, DEBUG off) and runs one
thread per moderator, each with its own keep-alive connection:

- baseline, ``--baseline-seconds``: every moderator sends two authenticated
  ``GET /api/projects/<slug>/`` (token check, project and membership look-ups, the
  project's categories), one after the other, and again;
- queue, ``--seconds``: every moderator asks ``POST .../queue/next/`` and answers it
  with ``POST /api/queue/items/<id>/submit/`` (a label, a fresh client key), and again.
  A request that times out or gets a 5xx is sent again as it was, so a retried
  submission carries the same client key. One submission in ``--resend-every`` is
  sent a second time on purpose, as a client that lost the answer would; it must come
  back 200 with the first annotation. ``--think-ms`` adds a pause after each answer
  (0 by default: the moderators never rest, the server is saturated).

Latency is the time of the next + submit pair (of the two GETs in the baseline), and
the ratio against the baseline is printed for p50 and p99. Afterwards the database is
checked: ``double_assignments`` counts items given to the same moderator twice (a
second fresh lease of an item seen by the client, or a second assignment or label row
of one moderator for one item); ``over_overlap`` counts items given to, or labeled by,
more than ``overlap`` moderators; ``lost`` counts submissions answered 2xx that have
no annotation row with that client key; ``count_drift`` counts items whose
``labels_count`` differs from their label rows. All four must be 0. The run ends with
one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/veil_bench_queue"
SLUG = "bench-queue"
RETRIES = 5


class HttpClient:
    """One keep-alive connection with a token; requests that fail in transit are re-sent."""

    def __init__(self, port: int, token: str, timeout: float):
        self.port, self.timeout = port, timeout
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        self.conn: http.client.HTTPConnection | None = None
        self.retries = 0

    def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, object]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, json.loads(data) if data else None

    def call(self, method: str, path: str, payload: dict | None = None) -> tuple[int, object]:
        """Status and decoded body; a timeout, a dropped connection or a 5xx is retried as is."""
        body = json.dumps(payload).encode() if payload is not None else None
        for attempt in range(RETRIES + 1):
            try:
                status, data = self._send(method, path, body)
            except (OSError, http.client.HTTPException):
                self.close()
                status, data = 599, None
            if status < 500 or attempt == RETRIES:
                return status, data
            self.retries += 1
            time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Moderator:
    username: str
    token: str
    latencies: list[float] = field(default_factory=list)
    accepted: list[tuple[str, int]] = field(default_factory=list)
    fresh_items: set[int] = field(default_factory=set)
    client_doubles: int = 0
    resends: int = 0
    resend_mismatches: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    exhausted: bool = False
    retries: int = 0


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"--database-url names {name!r}: the bench drops its database, so its name must contain 'bench'")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


def populate(*, images: int, moderators: int, overlap: int) -> tuple[list[tuple[str, str]], list[str]]:
    """The project, its images, round 0 and the moderators; returns (username, token) pairs and category keys."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from labeling.models import Image, Membership, QueueItem
    from labeling.services.projects import project_create
    from labeling.services.rounds import round_start_initial

    project = project_create(slug=SLUG, name="Queue load", overlap=overlap, batch_size=images)
    rows = (
        Image(project=project, name=f"bench/{i:06d}.jpg", source="bench", sha256=f"{i:064x}",
              width=320, height=240, size_bytes=20_000, format="JPEG", status=Image.Status.ACCEPTED,
              original=f"originals/{i:064x}.jpg", thumbnail=f"thumbnails/{i:064x}.jpg",
              blurred=f"blurred/{i:064x}.jpg", sketch=f"sketches/{i:064x}.jpg")
        for i in range(images)
    )
    batch: list[Image] = []
    for image in rows:
        batch.append(image)
        if len(batch) == 5000:
            Image.objects.bulk_create(batch)
            batch = []
    if batch:
        Image.objects.bulk_create(batch)
    round_start_initial(project=project, seed=0)
    assert QueueItem.objects.filter(round__project=project).count() == images

    User = get_user_model()
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"moderator{i:02d}", password=unusable) for i in range(moderators)]
    )
    Membership.objects.bulk_create(
        [Membership(project=project, user=u, role=Membership.Role.MODERATOR) for u in users]
    )
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    categories = list(project.categories.values_list("key", flat=True))
    return [(u.username, t.key) for u, t in zip(users, tokens, strict=True)], categories


def start_server(*, port: int, env: dict, workers: int, threads: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "gunicorn", "moderation.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads),
        "--keep-alive", "30", "--timeout", "60", "--log-level", "warning",
    ]
    handle = log.open("w")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_ready(port: int, token: str, server: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            status, _ = HttpClient(port, token, timeout=5)._send("GET", f"/api/projects/{SLUG}/", None)
            if status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.25)
    raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def run_threads(target, moderators: list[Moderator], *args) -> None:
    threads = [threading.Thread(target=target, args=(m, *args), daemon=True) for m in moderators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def baseline_loop(moderator: Moderator, port: int, seconds: float, timeout: float, record: bool) -> None:
    client = HttpClient(port, moderator.token, timeout)
    path = f"/api/projects/{SLUG}/"
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            first, _ = client.call("GET", path)
            second, _ = client.call("GET", path)
            if record and first == second == 200:
                moderator.latencies.append(time.perf_counter() - start)
    finally:
        client.close()


def queue_loop(moderator: Moderator, port: int, seconds: float, timeout: float, categories: list[str],
               resend_every: int, think_ms: float, seed: int) -> None:
    rng = random.Random(seed)
    client = HttpClient(port, moderator.token, timeout)
    next_path = f"/api/projects/{SLUG}/queue/next/"
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status, lease = client.call("POST", next_path)
            if status == 204:
                moderator.exhausted = True
                break
            if status != 200:
                moderator.refused[f"next {status}"] = moderator.refused.get(f"next {status}", 0) + 1
                continue
            item = lease["item_id"]
            if not lease["resumed"]:
                if item in moderator.fresh_items:
                    moderator.client_doubles += 1
                moderator.fresh_items.add(item)
            payload = {"client_key": uuid.uuid4().hex, "kind": "label", "category": rng.choice(categories),
                       "time_spent_ms": rng.randint(800, 6000)}
            status, annotation = client.call("POST", f"/api/queue/items/{item}/submit/", payload)
            elapsed = time.perf_counter() - start
            if status not in (200, 201):
                code = (annotation or {}).get("code", "") if isinstance(annotation, dict) else ""
                key = f"submit {status} {code}".strip()
                moderator.refused[key] = moderator.refused.get(key, 0) + 1
                continue
            moderator.latencies.append(elapsed)
            moderator.accepted.append((payload["client_key"], annotation["id"]))
            if resend_every and rng.randrange(resend_every) == 0:
                moderator.resends += 1
                again, repeated = client.call("POST", f"/api/queue/items/{item}/submit/", payload)
                if again != 200 or repeated["id"] != annotation["id"]:
                    moderator.resend_mismatches += 1
            if think_ms:
                time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
    finally:
        moderator.retries += client.retries
        client.close()


def check_invariants(moderators: list[Moderator], overlap: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db.models import Count, Exists, OuterRef, Q

    from labeling.models import Annotation, Assignment, QueueItem

    retracted = Annotation.objects.filter(kind=Annotation.Kind.RETRACT, supersedes=OuterRef("pk"))
    labels = Annotation.objects.filter(kind=Annotation.Kind.LABEL, image__project__slug=SLUG).exclude(
        Exists(retracted)
    )
    same_user_assignments = (
        Assignment.objects.filter(item__round__project__slug=SLUG).values("item", "user")
        .annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    same_user_labels = (
        labels.values("image", "round", "user").annotate(n=Count("pk")).filter(n__gt=1).count()
    )
    client_doubles = sum(m.client_doubles for m in moderators)

    items = QueueItem.objects.filter(round__project__slug=SLUG)
    over = items.annotate(
        handed=Count("assignments", distinct=True),
    ).filter(Q(handed__gt=overlap) | Q(labels_count__gt=overlap)).values_list("pk", flat=True)
    over_labels = (
        labels.values("image", "round").annotate(n=Count("pk")).filter(n__gt=overlap)
        .values_list("image", flat=True)
    )
    over_overlap = len(set(over)) + items.filter(image__in=list(over_labels)).exclude(pk__in=list(over)).count()

    label_rows = {
        (row["image"], row["round"]): row["n"]
        for row in labels.values("image", "round").annotate(n=Count("pk"))
    }
    drift = sum(
        1 for image, round_, count in items.values_list("image", "round", "labels_count")
        if label_rows.get((image, round_), 0) != count
    )

    User = get_user_model()
    lost = 0
    for m in moderators:
        user = User.objects.get(username=m.username)
        stored = dict(Annotation.objects.filter(user=user).values_list("client_key", "pk"))
        lost += sum(1 for key, pk in m.accepted if stored.get(key) != pk)
    return {
        "double_assignments": client_doubles + same_user_assignments + same_user_labels,
        "over_overlap": over_overlap,
        "lost": lost,
        "count_drift": drift,
        "label_rows": sum(label_rows.values()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--moderators", type=int, default=32)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread)")
    parser.add_argument("--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE of the server")
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean pause after each answer")
    parser.add_argument("--resend-every", type=int, default=50, help="re-send one submission in N (0: never)")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout per request, seconds")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind for inspection")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="veil-bench-queue-"))
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DATABASE_CONN_MAX_AGE": str(args.conn_max_age),
        "DJANGO_SETTINGS_MODULE": "moderation.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_DEBUG": "false",
        "VEIL_VAR_DIR": str(scratch),
        "VEIL_LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "filesystem://",
    }
    os.environ.update(env)
    import django
    from django.core.management import call_command

    started = time.perf_counter()
    recreate_database(args.database_url)
    django.setup()
    call_command("migrate", verbosity=0)
    accounts, categories = populate(images=args.images, moderators=args.moderators, overlap=args.overlap)
    from django.db import connection

    connection.close()
    print(f"database {urlparse(args.database_url).path.lstrip('/')}: {args.images:,} images and queue items, "
          f"overlap {args.overlap}, {args.moderators} moderators, built in {time.perf_counter() - started:.1f} s")

    port = free_port()
    log = scratch / "gunicorn.log"
    server = start_server(port=port, env=env, workers=args.workers, threads=args.threads, log=log)
    try:
        wait_ready(port, accounts[0][1], server, log)
        print(f"gunicorn on 127.0.0.1:{port}: {args.workers} workers x {args.threads} threads (gthread), "
              f"CONN_MAX_AGE={args.conn_max_age}")
        warm = [Moderator(u, t) for u, t in accounts]
        run_threads(baseline_loop, warm, port, args.warmup_seconds, args.timeout, False)
        base = [Moderator(u, t) for u, t in accounts]
        run_threads(baseline_loop, base, port, args.baseline_seconds, args.timeout, True)
        mods = [Moderator(u, t) for u, t in accounts]
        threads = [
            threading.Thread(target=queue_loop, daemon=True,
                             args=(m, port, args.seconds, args.timeout, categories, args.resend_every,
                                   args.think_ms, args.seed * 1000 + i))
            for i, m in enumerate(mods)
        ]
        queue_started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        queue_seconds = time.perf_counter() - queue_started
    finally:
        stop_server(server)

    invariants = check_invariants(mods, args.overlap)
    from django.db import connections

    connections.close_all()
    if not args.keep_db:
        drop_database(args.database_url)

    base_lat = [x for m in base for x in m.latencies]
    pair_lat = [x for m in mods for x in m.latencies]
    labels = sum(len(m.accepted) for m in mods)
    refused: dict[str, int] = {}
    for m in mods:
        for key, n in m.refused.items():
            refused[key] = refused.get(key, 0) + n
    b50, b99 = percentile(base_lat, 50) * 1000, percentile(base_lat, 99) * 1000
    p50, p99 = percentile(pair_lat, 50) * 1000, percentile(pair_lat, 99) * 1000
    rate = labels / queue_seconds

    print()
    print(f"{'':34}{'pairs':>9}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(f"{'baseline: GET project, twice':34}{len(base_lat):>9}{len(base_lat) / args.baseline_seconds:>9.1f}"
          f"{b50:>9.1f}{b99:>9.1f}{max(base_lat, default=0) * 1000:>9.1f}")
    print(f"{'queue: next + submit':34}{len(pair_lat):>9}{len(pair_lat) / queue_seconds:>9.1f}"
          f"{p50:>9.1f}{p99:>9.1f}{max(pair_lat, default=0) * 1000:>9.1f}")
    print(f"ratio queue / baseline: p50 {p50 / b50:.2f}, p99 {p99 / b99:.2f}")
    print(f"labels: {labels} in {queue_seconds:.1f} s = {rate:.1f} labels/s "
          f"({invariants['label_rows']} label rows in the database)")
    print(f"re-sent submissions: {sum(m.resends for m in mods)} on purpose, "
          f"{sum(m.resend_mismatches for m in mods)} not answered with the first annotation; "
          f"{sum(m.retries for m in mods)} requests retried after a timeout or 5xx")
    print(f"refused: {refused or 'none'}; queue exhausted: {any(m.exhausted for m in mods)}")
    print(f"items given to the same moderator twice: {invariants['double_assignments']}  (must be 0)")
    print(f"items over overlap {args.overlap}:              {invariants['over_overlap']}  (must be 0)")
    print(f"submissions lost:                     {invariants['lost']}  (must be 0)")
    print(f"labels_count drift:                   {invariants['count_drift']}  (must be 0)")
    print(f"p99 target 100 ms: {'met' if p99 <= 100 else 'NOT met'}")

    result = {
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "labels_per_s": round(rate, 1),
        "double_assignments": invariants["double_assignments"],
        "over_overlap": invariants["over_overlap"],
        "lost": invariants["lost"],
        "count_drift": invariants["count_drift"],
        "resend_mismatches": sum(m.resend_mismatches for m in mods),
        "refused": sum(refused.values()),
        "baseline_p50_ms": round(b50, 2),
        "baseline_p99_ms": round(b99, 2),
        "p50_ratio": round(p50 / b50, 3),
        "p99_ratio": round(p99 / b99, 3),
        "pairs": len(pair_lat),
        "seconds": round(queue_seconds, 1),
        "moderators": args.moderators,
        "images": args.images,
        "overlap": args.overlap,
        "workers": args.workers,
        "threads": args.threads,
        "conn_max_age": args.conn_max_age,
        "think_ms": args.think_ms,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
