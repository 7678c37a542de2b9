"""Ingest throughput and near-duplicate look-up speed.

    python -m bench.ingest [--data DIR] [--workers 2] [--lookup-n 1000000]

Imports DIR into a fresh project (a throw-away SQLite database and media folder) and
compares the rate with a bare loop over the same files that only decodes and hashes
(full decode, SHA-256, pHash), measured in the same run after warming the page cache,
once before and once after the import (their mean is the baseline).
Then builds the near-duplicate index over 1,000,000 random 64-bit hashes and compares
its look-up time with a vectorised linear scan (bench.hash_lookup). Ends with one JSON
line holding ``ingest_ratio`` and ``lookup_speedup``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import imagehash
from PIL import Image, ImageOps

from bench import harness, hash_lookup

DEFAULT_DATA = harness.ROOT.parent / "shared" / "datasets" / "clothing-small"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def bare_loop(files: list[Path]) -> float:
    """Seconds to decode and hash every file, one after another."""
    with harness.timed() as timing:
        for path in files:
            data = path.read_bytes()
            hashlib.sha256(data).hexdigest()
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image.convert("RGB"))
                imagehash.phash(image)
    return timing.wall


def import_run(data: Path, workers: int) -> tuple[float, dict]:
    from labeling.services.ingest import import_job_create, import_job_run
    from labeling.services.projects import project_create

    project = project_create(slug=f"bench-{int(time.time())}")
    job = import_job_create(project=project, paths=[str(data)])
    with harness.timed() as timing:
        summary = import_job_run(job_id=job.pk, workers=workers)
    return timing.wall, summary.as_dict()


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    harness.add_data(parser, default=DEFAULT_DATA)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lookup-n", type=int, default=1_000_000)
    return parser


def setup_django() -> None:
    """Django on a throw-away SQLite database and media folder, migrated."""
    scratch = tempfile.mkdtemp(prefix="veil-bench-ingest-")
    os.environ["VEIL_VAR_DIR"] = scratch
    os.environ["DATABASE_URL"] = f"sqlite:///{scratch}/bench.sqlite3"
    os.environ["DJANGO_SETTINGS_MODULE"] = "moderation.settings.local"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def run(args: argparse.Namespace) -> dict:
    """The import against the bare loop, then the index look-ups; prints and returns the figures."""
    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in files:
        path.read_bytes()
    before = bare_loop(files)
    import_seconds, summary = import_run(args.data, args.workers)
    after = bare_loop(files)
    bare_seconds = (before + after) / 2
    bare_rate, import_rate = len(files) / bare_seconds, len(files) / import_seconds

    print(f"files: {len(files)} from {args.data}")
    print(
        f"bare decode + hash loop: {bare_seconds:7.2f} s  {bare_rate:7.1f} images/s (1 thread; "
        f"mean of a run before and one after the import: {before:.2f} s, {after:.2f} s)"
    )
    print(
        f"veil import:             {import_seconds:7.2f} s  {import_rate:7.1f} images/s "
        f"({args.workers} analysis workers; checks, hashes, derivatives, rows, files)"
    )
    print(f"ingest ratio (import rate / bare rate): {import_rate / bare_rate:.2f}")
    print(f"outcomes: { {k: v for k, v in summary.items() if v} }")

    lookup = hash_lookup.run(n=args.lookup_n)
    print(
        f"near-duplicate index over {lookup['n']:,} hashes: {lookup['index_us']:.1f} us per look-up, "
        f"linear scan {lookup['scan_us']:.1f} us, speed-up {lookup['lookup_speedup']:.0f}x "
        f"({lookup['compiled_lookup_speedup']:.0f}x over the compiled scan)"
    )

    return {
        "files": len(files),
        "bare_images_per_s": round(bare_rate, 2),
        "import_images_per_s": round(import_rate, 2),
        "ingest_ratio": round(import_rate / bare_rate, 3),
        "workers": args.workers,
        "accepted": summary["accepted"],
        "lookup_n": lookup["n"],
        "index_us": lookup["index_us"],
        "scan_us": lookup["scan_us"],
        "lookup_speedup": lookup["lookup_speedup"],
        "compiled_scan_us": lookup["compiled_scan_us"],
        "compiled_lookup_speedup": lookup["compiled_lookup_speedup"],
    }


def main(argv: list[str] | None = None) -> dict:
    args = harness.parse(arguments(), argv)
    setup_django()
    return harness.emit(run(args))


if __name__ == "__main__":
    main(sys.argv[1:])
