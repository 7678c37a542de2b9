"""What every benchmark shares: its command line, its clocks, the machine's load and the
final line of JSON.

A benchmark prints its figures, with a ratio against a baseline measured in the same
run, and ends with one line of JSON holding the figures (:func:`emit`), which scripts
read. Its ``main`` is short: build the parser (:func:`parser`, :func:`add_data`), parse
(:func:`parse`), measure, :func:`emit`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def parser(doc: str | None, *, prog: str | None = None) -> argparse.ArgumentParser:
    """An argument parser whose help is the benchmark's docstring ``doc``, line breaks kept."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_data(
    parser: argparse.ArgumentParser,
    *,
    default: Path | None = None,
    required: bool = False,
    help: str = "image folder",
) -> None:
    """The ``--data DIR`` option; :func:`parse` checks that it names a folder."""
    parser.add_argument("--data", type=Path, default=default, required=required, help=help)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed; a ``--data`` that is not a folder is a usage error naming it."""
    args = parser.parse_args(argv)
    data = getattr(args, "data", None)
    if data is not None and not Path(data).is_dir():
        parser.error(f"--data {data}: not a folder")
    return args


@dataclass
class Timing:
    """Seconds of a timed block: ``wall`` clock and ``cpu`` time of this process."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    """``with timed() as t: ...``; afterwards ``t.wall`` and ``t.cpu`` hold the block's
    seconds (``time.perf_counter`` and ``time.process_time``)."""
    timing = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.wall = time.perf_counter() - wall
        timing.cpu = time.process_time() - cpu


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages (other work skews timings)."""
    return os.getloadavg()


def rounded(values: Sequence[float], digits: int = 2) -> list[float]:
    return [round(float(v), digits) for v in values]


def emit(figures: dict[str, Any]) -> dict[str, Any]:
    """Prints ``figures`` as the run's last line, one line of JSON; returns them."""
    print(json.dumps(figures))
    return figures


def setup_django(database_url: str | None, *, name: str) -> None:
    """Django for a benchmark: ``database_url``, or a fresh SQLite file in a scratch
    folder (``veil-bench-<name>-*``) that also holds the media; migrated."""
    scratch = tempfile.mkdtemp(prefix=f"veil-bench-{name}-")
    os.environ["VEIL_VAR_DIR"] = scratch
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{scratch}/bench.sqlite3"
    os.environ["DJANGO_SETTINGS_MODULE"] = "moderation.settings.local"
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def synthetic_image(project, i: int, **fields):
    """An unsaved accepted ``Image`` row numbered ``i`` with synthetic metadata and storage
    names (no files behind them), for bulk inserts; ``fields`` add or override."""
    from labeling.models import Image

    values = {
        "project": project,
        "name": f"{i:06d}.jpg",
        "sha256": f"{project.pk:08x}{i:056x}",
        "status": Image.Status.ACCEPTED,
        "width": 320,
        "height": 240,
        "size_bytes": 20_000 + i % 5000,
        "format": "JPEG",
        "source": "bench",
        "quality_score": 0.5,
        "original": f"originals/{i:06d}.jpg",
        **fields,
    }
    return Image(**values)
