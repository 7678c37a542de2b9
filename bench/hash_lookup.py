"""Near-duplicate look-up: HashIndex against a vectorised linear scan, in one run.

``python -m bench.hash_lookup [--n N] [--queries Q] [--radius R] [--seed S] [--batch B]``
prints a short table and, last, one JSON line with ``lookup_speedup`` (scan time per
look-up over batched index time per look-up), ``index_us``, ``scan_us``,
``single_index_us``, ``single_speedup``, ``build_seconds``, ``n`` and the rest below.

The stored hashes are uniform random 64-bit values. Half of the queries are planted
near neighbours (a stored hash with 1..radius bits flipped, so every one has at least
one match); the other half are fresh random hashes (almost never a match).

Five methods are timed, per look-up:

- ``index_us``: :meth:`HashIndex.query_many` on batches of ``batch`` queries (64 is the
  import's batch size), the time of a batch divided by its size;
- ``single_index_us``: :meth:`HashIndex.query`, one query at a time;
- ``scan_per_query_us``: XOR and popcount of one query against every stored hash, in
  NumPy;
- ``scan_batched_us``: the same scan for a whole batch, tiled so that a slice of the
  stored hashes stays in cache while every query of the batch passes over it;
- ``compiled_scan_us``: the tiled batched scan compiled, as the index's loops are
  (:func:`ml.hash_kernels.scan_matches`, which also scans the index's untabled tail).

The baseline ``scan_us`` is the faster of the two NumPy scans, so that neither speed-up
is flattered by a slow baseline. The index's loops are compiled and NumPy's are not, so
``compiled_lookup_speedup`` gives the index's speed-up over the compiled scan as well.

The methods take turns on rounds of about a tenth of the batches, so that a change in
machine load touches all alike, and each batch is timed after a short untimed pause, so
that every method starts with caches that other work has had the chance to evict, as
between the import's batches. The garbage
collector is off while they are timed, as in ``timeit``.

Times are CPU time of this process (``time.process_time``; the look-ups are single-
threaded). On a shared machine wall-clock time also counts other processes' time
slices, and a scan batch of ~100 ms absorbs many more of them than a look-up batch of
~1 ms, which would flatter the index; the wall-clock figures are reported as well,
as ``*_wall_us`` and ``wall_lookup_speedup``. On an idle machine the two agree.

Every look-up's matches are checked, for all five methods, against the per-query
scan's, and a mismatch aborts the run.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np

from bench import harness
from ml import hash_kernels
from ml.hashing import HashIndex

_ROUNDS = 10
_TILE = 1 << 16
_PAUSE = 0.002


def _random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)


def _planted_queries(rng: np.random.Generator, stored: np.ndarray, count: int, radius: int) -> np.ndarray:
    """``count`` stored hashes, each with 1..radius random bits flipped (``uint64``)."""
    picked = stored[rng.integers(0, len(stored), size=count)]
    queries = picked.copy()
    for j in range(count):
        flips = rng.choice(64, size=int(rng.integers(1, max(radius, 1) + 1)), replace=False)
        queries[j] = picked[j] ^ np.uint64(sum(1 << int(b) for b in flips))
    return queries


def _sorted_matches(ids: np.ndarray, distances: np.ndarray) -> list[tuple[int, int]]:
    """``(id, distance)`` pairs sorted like query(): by distance, then id."""
    order = np.lexsort((ids, distances))
    return list(zip(ids[order].tolist(), distances[order].tolist(), strict=True))


def _scan(stored: np.ndarray, query: np.uint64, radius: int) -> list[tuple[int, int]]:
    """Baseline: XOR and popcount over every stored hash; matches sorted like query()."""
    distances = np.bitwise_count(stored ^ query)
    ids = np.flatnonzero(distances <= radius)
    return _sorted_matches(ids, distances[ids])


def _scan_batch(stored: np.ndarray, batch: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
    """Baseline for a batch: the scan of every query, tile by tile of ``stored``.

    Each tile of ``_TILE`` stored hashes (and the scratch arrays, reused) stays in cache
    while every query of the batch is XORed and popcounted against it.
    """
    xor = np.empty(_TILE, dtype=np.uint64)
    count = np.empty(_TILE, dtype=np.uint8)
    close = np.empty(_TILE, dtype=bool)
    found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in batch]
    for start in range(0, len(stored), _TILE):
        tile = stored[start : start + _TILE]
        x, c, k = xor[: len(tile)], count[: len(tile)], close[: len(tile)]
        for parts, query in zip(found, batch, strict=True):
            np.bitwise_xor(tile, query, out=x)
            np.bitwise_count(x, out=c)
            np.less_equal(c, radius, out=k)
            ids = np.flatnonzero(k)
            if len(ids):
                parts.append((ids + start, c[ids]))
    return [
        _sorted_matches(np.concatenate([i for i, _ in parts]), np.concatenate([d for _, d in parts])) if parts else []
        for parts in found
    ]


def _compiled_scan(stored: np.ndarray, batch: np.ndarray, radius: int) -> list[list[tuple[int, int]]]:
    """Baseline: :func:`ml.hash_kernels.scan_matches` over every stored hash."""
    out = np.empty((4 * len(batch), 3), dtype=np.int64)
    found = hash_kernels.scan_matches(batch, stored, 0, radius, out)
    if found > len(out):
        out = np.empty((found, 3), dtype=np.int64)
        hash_kernels.scan_matches(batch, stored, 0, radius, out)
    query, ids, distances = out[:found].T
    return [_sorted_matches(ids[query == q], distances[query == q]) for q in range(len(batch))]


def run(n: int = 1_000_000, queries: int = 1000, radius: int = 8, seed: int = 0, batch: int = 64) -> dict:
    """Build an index of ``n`` random hashes, time ``queries`` look-ups every way.

    Returns the measured figures (times in microseconds per look-up, build in seconds).
    """
    rng = np.random.default_rng(seed)
    stored = _random_hashes(rng, n)
    planted = queries // 2
    probe = np.concatenate([_planted_queries(rng, stored, planted, radius), _random_hashes(rng, queries - planted)])

    index = HashIndex(radius=radius)
    with harness.timed() as build:
        index.add_many(stored, range(n))
    build_seconds = build.wall

    # Untimed warm-up on other hashes: first-call costs (lazy imports, first touch of the
    # scratch memory) are not look-up costs.
    warm_up = _random_hashes(rng, batch)
    index.query_many(warm_up)
    index.query(int(warm_up[0]))
    _scan(stored, warm_up[0], radius)
    _scan_batch(stored, warm_up[:2], radius)
    _compiled_scan(stored, warm_up[:2], radius)

    methods = {
        "batched": index.query_many,
        "single": lambda block: [index.query(int(q)) for q in block],
        "scan": lambda block: [_scan(stored, q, radius) for q in block],
        "scan_batched": lambda block: _scan_batch(stored, block, radius),
        "scan_compiled": lambda block: _compiled_scan(stored, block, radius),
    }
    batches = [probe[i : i + batch] for i in range(0, queries, batch)]
    rounds = np.array_split(np.arange(len(batches)), min(_ROUNDS, len(batches)))
    results: dict[str, list[list[tuple[int, int]]]] = {name: [] for name in methods}
    seconds = dict.fromkeys(methods, 0.0)
    cpu_seconds = dict.fromkeys(methods, 0.0)
    # As timeit does: the cyclic garbage collector would stop whichever batch happens to
    # be running when it walks the million keys, and charge that batch its pause.
    gc.collect()
    gc.disable()
    try:
        for members in rounds:
            for name, method in methods.items():
                for b in members:
                    time.sleep(_PAUSE)
                    with harness.timed() as timing:
                        found = method(batches[b])
                    seconds[name] += timing.wall
                    cpu_seconds[name] += timing.cpu
                    results[name] += found
    finally:
        gc.enable()

    want = results["scan"]
    for method in ("batched", "single", "scan_batched", "scan_compiled"):
        for q, got, expected in zip(probe, results[method], want, strict=True):
            if got != expected:
                raise AssertionError(f"{method} and scan disagree for query {int(q):016x}")

    us = {method: s / queries * 1e6 for method, s in cpu_seconds.items()}
    wall_us = {method: s / queries * 1e6 for method, s in seconds.items()}
    baseline = "scan_batched" if us["scan_batched"] < us["scan"] else "scan"
    return {
        "n": n,
        "queries": queries,
        "radius": radius,
        "batch": batch,
        "build_seconds": round(build_seconds, 3),
        "index_us": round(us["batched"], 2),
        "scan_us": round(us[baseline], 1),
        "lookup_speedup": round(us[baseline] / us["batched"], 1),
        "single_index_us": round(us["single"], 1),
        "single_speedup": round(us[baseline] / us["single"], 1),
        "scan_baseline": "batched" if baseline == "scan_batched" else "per-query",
        "scan_per_query_us": round(us["scan"], 1),
        "scan_batched_us": round(us["scan_batched"], 1),
        "compiled_scan_us": round(us["scan_compiled"], 1),
        "compiled_lookup_speedup": round(us["scan_compiled"] / us["batched"], 1),
        "index_wall_us": round(wall_us["batched"], 2),
        "single_index_wall_us": round(wall_us["single"], 1),
        "scan_wall_us": round(min(wall_us["scan"], wall_us["scan_batched"]), 1),
        "wall_lookup_speedup": round(min(wall_us["scan"], wall_us["scan_batched"]) / wall_us["batched"], 1),
        "queries_with_matches": sum(bool(r) for r in want),
        "matches": sum(len(r) for r in want),
        "results_identical": True,
    }


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=64)
    return parser


def report(result: dict) -> None:
    """The per-method table and the speed-ups, for people."""
    print(f"{'us per look-up':<28}{'CPU':>10}{'wall':>10}")
    for label, cpu, wall in [
        ("linear scan, per query", "scan_per_query_us", None),
        ("linear scan, batched", "scan_batched_us", None),
        ("linear scan, compiled", "compiled_scan_us", None),
        ("HashIndex.query", "single_index_us", "single_index_wall_us"),
        ("HashIndex.query_many", "index_us", "index_wall_us"),
    ]:
        wall_text = f"{result[wall]:>10.1f}" if wall else f"{'':>10}"
        print(f"{label:<28}{result[cpu]:>10.1f}{wall_text}")
    print(
        f"speedup {result['lookup_speedup']}x batched ({result['single_speedup']}x one at a "
        f"time) over the {result['scan_baseline']} scan of {result['n']} hashes, radius "
        f"{result['radius']}, batches of {result['batch']}; build {result['build_seconds']} s; "
        f"{result['queries_with_matches']}/{result['queries']} look-ups with matches; "
        f"wall-clock speedup {result['wall_lookup_speedup']}x; "
        f"{result['compiled_lookup_speedup']}x over the compiled scan"
    )


def main(argv: list[str] | None = None) -> dict:
    args = harness.parse(arguments(), argv)
    result = run(n=args.n, queries=args.queries, radius=args.radius, seed=args.seed, batch=args.batch)
    report(result)
    return harness.emit(result)


if __name__ == "__main__":
    main(sys.argv[1:])
