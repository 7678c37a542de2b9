"""JSONL export time and memory on a 100,000-image labeled project.

    python -m bench.export [--images 100000] [--database-url postgres://...]

Builds a labeled project (two moderators' labels on every image, with disagreements,
some adjudications and model labels) in a throw-away database, then exports it as JSONL
twice: the first 1,000 images and all of them. Prints the export time, the images per
second against a baseline measured in the same run (a bare loop that reads the same
rows and writes one JSON line each, with no label logic), and the growth of peak
Python memory (tracemalloc) from the 1,000- to the 100,000-image export. Ends with one
JSON line holding ``seconds`` and ``memory_growth_mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc

from bench import harness


def build_project(n: int):
    from django.contrib.auth import get_user_model

    from labeling.models import Adjudication, Annotation, Image
    from labeling.services.projects import project_create

    project = project_create(slug=f"bench-export-{int(time.time())}")
    categories = list(project.categories.all())
    users = [get_user_model().objects.create_user(f"bench-{project.pk}-{i}") for i in range(2)]
    for start in range(0, n, 10_000):
        count = min(10_000, n - start)
        images = Image.objects.bulk_create(harness.synthetic_image(project, i) for i in range(start, start + count))
        rows = []
        for image in images:
            first = categories[image.pk % len(categories)]
            second = first if image.pk % 7 else categories[(image.pk + 1) % len(categories)]
            rows.append(Annotation(image=image, user=users[0], kind="label", category=first, client_key=f"a{image.pk}"))
            rows.append(
                Annotation(image=image, user=users[1], kind="label", category=second, client_key=f"b{image.pk}")
            )
        Annotation.objects.bulk_create(rows, batch_size=5000)
        Adjudication.objects.bulk_create(
            [
                Adjudication(image=image, category=categories[0], decided_by=users[0], reason="bench")
                for image in images
                if image.pk % 97 == 0
            ]
        )
    return project


def _export(project, limit: int) -> int:
    from labeling.services import exports

    filters = exports.ExportFilters()
    original = exports._images
    if limit:
        exports._images = lambda p, f: original(p, f).filter(pk__in=original(p, f).values("pk")[:limit])
    try:
        rows = 0
        with open(os.devnull, "w") as sink:
            for line in exports.jsonl_lines(exports.export_rows(project=project, filters=filters)):
                sink.write(line)
                rows += 1
    finally:
        exports._images = original
    return rows


def timed_export(project, limit: int) -> tuple[float, float, int]:
    """Seconds, peak traced MB and rows of a JSONL export of the first ``limit`` images.

    Time and memory come from two runs: tracemalloc slows allocation-heavy code several
    times over, so the timed run goes without it.
    """
    with harness.timed() as timing:
        rows = _export(project, limit)
    seconds = timing.wall
    tracemalloc.start()
    _export(project, limit)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, rows


def baseline(project) -> float:
    """Seconds for a bare read of the same rows, one JSON line each."""
    from labeling.models import Image

    with harness.timed() as timing, open(os.devnull, "w") as sink:
        for row in (
            Image.objects.filter(project=project)
            .order_by("pk")
            .values("pk", "name", "source", "width", "height", "size_bytes", "quality_score", "split", "sha256")
            .iterator(chunk_size=2000)
        ):
            sink.write(json.dumps(row) + "\n")
    return timing.wall


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    return parser


def run(args: argparse.Namespace) -> dict:
    """The small and the full export against the bare read; prints and returns the figures."""
    with harness.timed() as built:
        project = build_project(args.images)
    print(f"built a labeled project of {args.images:,} images in {built.wall:.1f} s")

    small_seconds, small_peak, small_rows = timed_export(project, args.small)
    seconds, peak, rows = timed_export(project, 0)
    bare = baseline(project)
    growth = peak - small_peak
    print(f"JSONL export, {small_rows:>7,} rows: {small_seconds:6.2f} s, peak traced memory {small_peak:6.1f} MB")
    print(
        f"JSONL export, {rows:>7,} rows: {seconds:6.2f} s, peak traced memory {peak:6.1f} MB "
        f"({rows / seconds:,.0f} rows/s)"
    )
    print(
        f"bare read + json.dumps of the same rows: {bare:.2f} s ({rows / bare:,.0f} rows/s); "
        f"export/bare time ratio {seconds / bare:.2f}"
    )
    print(f"peak memory growth from {args.small:,} to {args.images:,} images: {growth:.1f} MB")
    return {
        "images": args.images,
        "rows": rows,
        "seconds": round(seconds, 3),
        "baseline_seconds": round(bare, 3),
        "ratio_to_baseline": round(seconds / bare, 3),
        "peak_mb_small": round(small_peak, 2),
        "peak_mb_full": round(peak, 2),
        "memory_growth_mb": round(growth, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    args = harness.parse(arguments(), argv)
    harness.setup_django(args.database_url, name="export")
    return harness.emit(run(args))


if __name__ == "__main__":
    main(sys.argv[1:])
