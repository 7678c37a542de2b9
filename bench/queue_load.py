"""The labeling queue under load: many moderators calling next and submit over HTTP.

    python -m bench.queue_load [--seconds 60] [--moderators 32] [--images 100000]
                               [--think-ms 1000] [--workers N] [--worker-class sync] [--conn-max-age 60]
                               [--database-url postgres://postgres@127.0.0.1:5432/veil_bench_queue]
                               [--keep-db] [--reuse-db]

Builds a throw-away PostgreSQL database (dropped and created again; its name must
contain ``bench``), migrates it, bulk-creates a project of ``--images`` accepted images
with overlap 2, starts round 0 over all of them through ``round_start_initial`` and adds
``--moderators`` moderators with API tokens. Then it serves the app with gunicorn on a
free port of 127.0.0.1 (``moderation.settings.production``, DEBUG off; sync workers, as
``docker-compose.yml`` runs the web service, one per core and one more: the app is
CPU-bound Python, and more processes than cores only take turns) and runs one thread
per moderator, each with its own connection, for ``--seconds``:

- every moderator asks ``POST .../queue/next/``, answers it with
  ``POST /api/queue/items/<id>/submit/`` (a label, a fresh client key), rests
  ``--think-ms`` on average (uniform between half and one and a half times it), and
  again. Each starts after a rest of random length (up to one and a half times
  ``--think-ms``), as people who work independently do: started all at once, the 32
  first requests would queue behind each other, and that one burst, a few percent of
  a minute's pairs, would be the p99. A request that times out or gets a 5xx is sent again as it was, so a retried
  submission carries the same client key. One submission in ``--resend-every`` is sent
  a second time on purpose, as a client that lost the answer would; it must come back
  200 with the first annotation.
- the baseline, in the same threads and the same seconds: after one answer in
  ``--baseline-every``, the moderator also sends two authenticated
  ``GET /api/projects/<slug>/`` (token check, project and membership look-ups, the
  project's categories), one after the other, and rests again. Both kinds of pair thus
  meet the same server, the same concurrency and whatever else the machine is doing.

``--think-ms 1000`` (the default) is a fast human: 32 moderators then offer about 25
labels a second, and latency is service time. ``--think-ms 0`` saturates the server:
labels per second is then its capacity, and latency is mostly waiting in line
(moderators divided by throughput).

Latency is the time of the next + submit pair (of the two GETs for the baseline), and
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

from bench import harness

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
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data[:200].decode(errors="replace")

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
    baseline: list[float] = field(default_factory=list)
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
        raise SystemExit(
            f"--database-url names {name!r}: the bench drops its database, so its name must contain 'bench'"
        )
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
        Image(
            project=project,
            name=f"bench/{i:06d}.jpg",
            source="bench",
            sha256=f"{i:064x}",
            width=320,
            height=240,
            size_bytes=20_000,
            format="JPEG",
            status=Image.Status.ACCEPTED,
            original=f"originals/{i:064x}.jpg",
            thumbnail=f"thumbnails/{i:064x}.jpg",
            blurred=f"blurred/{i:064x}.jpg",
            sketch=f"sketches/{i:064x}.jpg",
        )
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
    users = User.objects.bulk_create([User(username=f"moderator{i:02d}", password=unusable) for i in range(moderators)])
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Membership.Role.MODERATOR) for u in users])
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    categories = list(project.categories.values_list("key", flat=True))
    return [(u.username, t.key) for u, t in zip(users, tokens, strict=True)], categories


def existing_accounts() -> tuple[list[tuple[str, str]], list[str]]:
    from rest_framework.authtoken.models import Token

    from labeling.models import Project

    project = Project.objects.get(slug=SLUG)
    tokens = Token.objects.filter(user__memberships__project=project).order_by("user__username")
    return (
        [(t.user.username, t.key) for t in tokens.select_related("user")],
        list(project.categories.values_list("key", flat=True)),
    )


def start_server(*, port: int, env: dict, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "moderation.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--keep-alive",
        str(args.keep_alive),
        "--timeout",
        "60",
        "--log-level",
        "warning",
    ]
    handle = log.open("w")
    return subprocess.Popen(
        command, cwd=harness.ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


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


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter(threading.Thread):
    """CPU used by the gunicorn workers and by the PostgreSQL backends serving ``database``.

    Samples twice a second, so that a backend closed during the run (``CONN_MAX_AGE``)
    still counts what it used up to its last sample.
    """

    def __init__(self, server: subprocess.Popen, database: str):
        super().__init__(daemon=True)
        self.server, self.database = server, database
        self.stop = threading.Event()
        self.start_cpu: dict[tuple[str, int], float] = {}
        self.last_cpu: dict[tuple[str, int], float] = {}
        self.sample(self.start_cpu)

    def pids(self) -> list[tuple[str, int]]:
        from django.db import connection

        try:
            path = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
            workers = [("gunicorn", int(pid)) for pid in path.read_text().split()]
        except OSError:
            workers = []
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.database]
            )
            return workers + [("postgres", row[0]) for row in cursor.fetchall()]

    def sample(self, into: dict) -> None:
        for key in self.pids():
            cpu = cpu_seconds(key[1])
            if cpu is not None:
                into[key] = cpu

    def run(self) -> None:
        from django.db import connection

        while not self.stop.wait(0.5):
            self.sample(self.last_cpu)
        self.sample(self.last_cpu)
        connection.close()

    def used(self) -> dict[str, float]:
        """CPU seconds per kind of process since the meter was made."""
        totals = {"gunicorn": 0.0, "postgres": 0.0}
        for key, cpu in self.last_cpu.items():
            totals[key[0]] += cpu - self.start_cpu.get(key, 0.0)
        return totals


def run_threads(target, arguments: list[tuple]) -> float:
    """Run ``target`` once per argument tuple, each in its own thread; returns the seconds taken."""
    threads = [threading.Thread(target=target, args=a, daemon=True) for a in arguments]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def warm_up(moderator: Moderator, port: int, seconds: float, timeout: float) -> None:
    client = HttpClient(port, moderator.token, timeout)
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            client.call("GET", f"/api/projects/{SLUG}/")
    finally:
        client.close()


def moderate(moderator: Moderator, port: int, args: argparse.Namespace, categories: list[str], seed: int) -> None:
    rng = random.Random(seed)
    client = HttpClient(port, moderator.token, args.timeout)
    next_path, project_path = f"/api/projects/{SLUG}/queue/next/", f"/api/projects/{SLUG}/"

    def rest() -> None:
        if args.think_ms:
            time.sleep(rng.uniform(0.5, 1.5) * args.think_ms / 1000)

    deadline = time.perf_counter() + args.seconds
    # Each moderator joins at a random point of its cycle, so the run starts in the
    # steady state instead of with every moderator asking at the same instant.
    if args.think_ms:
        time.sleep(rng.uniform(0, 1.5) * args.think_ms / 1000)
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
            payload = {
                "client_key": uuid.uuid4().hex,
                "kind": "label",
                "category": rng.choice(categories),
                "time_spent_ms": rng.randint(800, 6000),
            }
            status, annotation = client.call("POST", f"/api/queue/items/{item}/submit/", payload)
            elapsed = time.perf_counter() - start
            if status not in (200, 201):
                code = annotation.get("code", "") if isinstance(annotation, dict) else ""
                key = f"submit {status} {code}".strip()
                moderator.refused[key] = moderator.refused.get(key, 0) + 1
                continue
            moderator.latencies.append(elapsed)
            moderator.accepted.append((payload["client_key"], annotation["id"]))
            if args.resend_every and rng.randrange(args.resend_every) == 0:
                moderator.resends += 1
                again, repeated = client.call("POST", f"/api/queue/items/{item}/submit/", payload)
                if again != 200 or not isinstance(repeated, dict) or repeated.get("id") != annotation["id"]:
                    moderator.resend_mismatches += 1
            rest()
            if args.baseline_every and rng.randrange(args.baseline_every) == 0:
                start = time.perf_counter()
                first, _ = client.call("GET", project_path)
                second, _ = client.call("GET", project_path)
                if first == second == 200:
                    moderator.baseline.append(time.perf_counter() - start)
                rest()
    finally:
        moderator.retries += client.retries
        client.close()


def check_invariants(moderators: list[Moderator], overlap: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db.models import Count, Exists, OuterRef, Q

    from labeling.models import Annotation, Assignment, QueueItem

    retracted = Annotation.objects.filter(kind=Annotation.Kind.RETRACT, supersedes=OuterRef("pk"))
    labels = Annotation.objects.filter(kind=Annotation.Kind.LABEL, image__project__slug=SLUG).exclude(Exists(retracted))
    same_user_assignments = (
        Assignment.objects.filter(item__round__project__slug=SLUG)
        .values("item", "user")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    same_user_labels = labels.values("image", "round", "user").annotate(n=Count("pk")).filter(n__gt=1).count()
    client_doubles = sum(m.client_doubles for m in moderators)

    items = QueueItem.objects.filter(round__project__slug=SLUG)
    over = (
        items.annotate(
            handed=Count("assignments", distinct=True),
        )
        .filter(Q(handed__gt=overlap) | Q(labels_count__gt=overlap))
        .values_list("pk", flat=True)
    )
    over_labels = (
        labels.values("image", "round").annotate(n=Count("pk")).filter(n__gt=overlap).values_list("image", flat=True)
    )
    over_overlap = len(set(over)) + items.filter(image__in=list(over_labels)).exclude(pk__in=list(over)).count()

    label_rows = {
        (row["image"], row["round"]): row["n"] for row in labels.values("image", "round").annotate(n=Count("pk"))
    }
    drift = sum(
        1
        for image, round_, count in items.values_list("image", "round", "labels_count")
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


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--baseline-every", type=int, default=4, help="after one answer in N, also time a baseline pair (0: never)"
    )
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--moderators", type=int, default=32)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="gunicorn worker processes (default: one per core, and one more)",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    parser.add_argument(
        "--worker-class",
        default="sync",
        help="gunicorn worker class (sync, as docker-compose.yml runs the web service)",
    )
    parser.add_argument(
        "--keep-alive",
        type=int,
        default=0,
        help="seconds gunicorn keeps an idle connection (0: one request per connection)",
    )
    parser.add_argument("--conn-max-age", type=int, default=60, help="DATABASE_CONN_MAX_AGE of the server")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000.0,
        help="mean rest after each answer (0: never rest, saturate the server)",
    )
    parser.add_argument("--resend-every", type=int, default=50, help="re-send one submission in N (0: never)")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout per request, seconds")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind for inspection")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="run on the database a --keep-db run left, labels and all, instead of building one",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> dict:
    """Builds (or reuses) the database, serves it, runs the moderators; prints and returns the figures."""

    scratch = Path(tempfile.mkdtemp(prefix="veil-bench-queue-"))
    (scratch / "staticfiles").mkdir()
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
    if args.reuse_db:
        django.setup()
        accounts, categories = existing_accounts()
        args.moderators = len(accounts)
    else:
        recreate_database(args.database_url)
        django.setup()
        call_command("migrate", verbosity=0)
        accounts, categories = populate(images=args.images, moderators=args.moderators, overlap=args.overlap)
    from django.db import connection

    connection.close()
    print(
        f"database {urlparse(args.database_url).path.lstrip('/')}: {args.images:,} images and queue items, "
        f"overlap {args.overlap}, {args.moderators} moderators, "
        f"{'reused' if args.reuse_db else 'built'} in {time.perf_counter() - started:.1f} s"
    )

    port = free_port()
    log = scratch / "gunicorn.log"
    server = start_server(port=port, env=env, args=args, log=log)
    try:
        wait_ready(port, accounts[0][1], server, log)
        print(
            f"gunicorn on 127.0.0.1:{port}: {args.workers} workers x {args.threads} threads ({args.worker_class}), "
            f"keep-alive {args.keep_alive} s, CONN_MAX_AGE={args.conn_max_age}"
        )
        run_threads(warm_up, [(Moderator(u, t), port, args.warmup_seconds, args.timeout) for u, t in accounts])
        mods = [Moderator(u, t) for u, t in accounts]
        meter = CpuMeter(server, urlparse(args.database_url).path.lstrip("/"))
        client_before = time.process_time()
        load_before = harness.load_average()[0]
        meter.start()
        queue_seconds = run_threads(
            moderate, [(m, port, args, categories, args.seed * 1000 + i) for i, m in enumerate(mods)]
        )
        meter.stop.set()
        meter.join()
        load_after = harness.load_average()[0]
        client_cpu = time.process_time() - client_before
    finally:
        stop_server(server)

    invariants = check_invariants(mods, args.overlap)
    from django.db import connections

    connections.close_all()
    if not args.keep_db:
        drop_database(args.database_url)

    base_lat = [x for m in mods for x in m.baseline]
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
    print(
        f"{'baseline: GET project, twice':34}{len(base_lat):>9}{len(base_lat) / queue_seconds:>9.1f}"
        f"{b50:>9.1f}{b99:>9.1f}{max(base_lat, default=0) * 1000:>9.1f}"
    )
    print(
        f"{'queue: next + submit':34}{len(pair_lat):>9}{len(pair_lat) / queue_seconds:>9.1f}"
        f"{p50:>9.1f}{p99:>9.1f}{max(pair_lat, default=0) * 1000:>9.1f}"
    )
    print(f"ratio queue / baseline: p50 {p50 / b50:.2f}, p99 {p99 / b99:.2f}")
    used = meter.used()
    app_cpu, db_cpu = used["gunicorn"], used["postgres"]
    print(
        f"CPU during the run: gunicorn {app_cpu:.1f} s, PostgreSQL {db_cpu:.1f} s, this client {client_cpu:.1f} s; "
        f"server CPU per label {(app_cpu + db_cpu) / max(labels, 1) * 1000:.1f} ms "
        f"(baseline GETs and re-sent submissions included"
        f"{'; backends living under half a second are missed' if not args.conn_max_age else ''})"
    )
    print(
        f"labels: {labels} in {queue_seconds:.1f} s = {rate:.1f} labels/s "
        f"({invariants['label_rows']} label rows in the database)"
    )
    print(
        f"re-sent submissions: {sum(m.resends for m in mods)} on purpose, "
        f"{sum(m.resend_mismatches for m in mods)} not answered with the first annotation; "
        f"{sum(m.retries for m in mods)} requests retried after a timeout or 5xx"
    )
    print(f"refused: {refused or 'none'}; queue exhausted: {any(m.exhausted for m in mods)}")
    print(f"items given to the same moderator twice: {invariants['double_assignments']}  (must be 0)")
    print(f"items over overlap {args.overlap}:              {invariants['over_overlap']}  (must be 0)")
    print(f"submissions lost:                     {invariants['lost']}  (must be 0)")
    print(f"labels_count drift:                   {invariants['count_drift']}  (must be 0)")
    print(
        f"p99 target 100 ms: {'met' if p99 <= 100 else 'NOT met'}; machine load average "
        f"{load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores)"
    )

    return {
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
        "worker_class": args.worker_class,
        "keep_alive": args.keep_alive,
        "conn_max_age": args.conn_max_age,
        "think_ms": args.think_ms,
        "load_avg": round(max(load_before, load_after), 2),
        "server_cpu_ms_per_label": round((app_cpu + db_cpu) / max(labels, 1) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    return harness.emit(run(harness.parse(arguments(), argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
