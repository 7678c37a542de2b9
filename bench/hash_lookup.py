"""Near-duplicate look-up: HashIndex against a vectorised linear scan, in one run.

``python -m bench.hash_lookup [--n N] [--queries Q] [--radius R] [--seed S]`` prints a
short table and, last, one JSON line with ``lookup_speedup`` (scan time per look-up
over index time per look-up), ``index_us``, ``scan_us``, ``build_seconds`` and ``n``.

The stored hashes are uniform random 64-bit values. Half of the queries are planted
near neighbours (a stored hash with 1..radius bits flipped, so every one has at least
one match); the other half are fresh random hashes (almost never a match). The two
methods take turns on blocks of a tenth of the queries, so that a change in machine
load touches both alike. Every look-up's matches are checked against the scan's, and a
mismatch aborts the run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ml.hashing import HashIndex

_BLOCKS = 10


def _random_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)


def _planted_queries(
    rng: np.random.Generator, stored: np.ndarray, count: int, radius: int
) -> np.ndarray:
    """``count`` stored hashes, each with 1..radius random bits flipped (``uint64``)."""
    picked = stored[rng.integers(0, len(stored), size=count)]
    queries = picked.copy()
    for j in range(count):
        flips = rng.choice(64, size=int(rng.integers(1, max(radius, 1) + 1)), replace=False)
        queries[j] = picked[j] ^ np.uint64(sum(1 << int(b) for b in flips))
    return queries


def _scan(stored: np.ndarray, query: np.uint64, radius: int) -> list[tuple[int, int]]:
    """Baseline: XOR and popcount over every stored hash; matches sorted like query()."""
    distances = np.bitwise_count(stored ^ query)
    ids = np.flatnonzero(distances <= radius)
    order = np.lexsort((ids, distances[ids]))
    return [(int(i), int(distances[i])) for i in ids[order]]


def run(n: int = 1_000_000, queries: int = 1000, radius: int = 8, seed: int = 0) -> dict:
    """Build an index of ``n`` random hashes, time ``queries`` look-ups both ways.

    Returns the measured figures (times in microseconds per look-up, build in seconds).
    """
    rng = np.random.default_rng(seed)
    stored = _random_hashes(rng, n)
    planted = queries // 2
    probe = np.concatenate(
        [_planted_queries(rng, stored, planted, radius), _random_hashes(rng, queries - planted)]
    )

    index = HashIndex(radius=radius)
    start = time.perf_counter()
    index.add_many(stored, range(n))
    build_seconds = time.perf_counter() - start

    index_results: list[list[tuple[int, int]]] = []
    scan_results: list[list[tuple[int, int]]] = []
    index_seconds = scan_seconds = 0.0
    for block in np.array_split(probe, _BLOCKS):
        start = time.perf_counter()
        index_results += [index.query(int(q)) for q in block]
        index_seconds += time.perf_counter() - start
        start = time.perf_counter()
        scan_results += [_scan(stored, q, radius) for q in block]
        scan_seconds += time.perf_counter() - start

    for q, got, want in zip(probe, index_results, scan_results, strict=True):
        if got != want:
            raise AssertionError(f"index and scan disagree for query {int(q):016x}")

    index_us = index_seconds / queries * 1e6
    scan_us = scan_seconds / queries * 1e6
    return {
        "n": n,
        "queries": queries,
        "radius": radius,
        "build_seconds": round(build_seconds, 3),
        "index_us": round(index_us, 1),
        "scan_us": round(scan_us, 1),
        "lookup_speedup": round(scan_us / index_us, 1),
        "queries_with_matches": sum(bool(r) for r in index_results),
        "matches": sum(len(r) for r in index_results),
        "results_identical": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(n=args.n, queries=args.queries, radius=args.radius, seed=args.seed)
    print(f"{'method':<12}{'us / look-up':>14}")
    print(f"{'linear scan':<12}{result['scan_us']:>14.1f}")
    print(f"{'HashIndex':<12}{result['index_us']:>14.1f}")
    print(
        f"speedup {result['lookup_speedup']}x over {result['n']} hashes, radius "
        f"{result['radius']}; build {result['build_seconds']} s; "
        f"{result['queries_with_matches']}/{result['queries']} look-ups with matches"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
