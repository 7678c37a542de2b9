"""Benchmark: lazy k-center greedy against the plain one-pass-per-pick loop.

    python -m bench.selection_speed [--n 1000000 --d 384 --budget 1000]

Both run on the same synthetic embeddings in the same process. Prints both times, the
speed-up, both covering radii (largest distance from a row to its nearest chosen row)
and peak memory (process RSS after the fast run, over the size of the matrix), then
one JSON line. The fast version makes the same choices as the exact one, so the radius
ratio is 1 unless float32 rounding breaks a near-tie differently. Timings swing with
the load of a shared machine; the load average is printed.

The embeddings are clustered, not uniform: isotropic random vectors in 384-D are a poor
model of image embeddings, since all their pairwise distances are nearly equal. Rows
come from a two-level Gaussian mixture (topics, then clusters of log-normal sizes
around them), each cluster spread over its own 16-dimensional subspace plus a little
isotropic noise, L2-normalised.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys

import numpy as np
import sklearn.cluster  # noqa: F401  imported up front so that no timing includes it
from threadpoolctl import threadpool_info

from bench import harness
from ml.selection.kcenter import covering_radius, kcenter_greedy, kcenter_greedy_exact


def clustered_embeddings(
    n: int,
    d: int,
    *,
    n_clusters: int = 3000,
    n_topics: int = 60,
    subspace_dim: int = 16,
    seed: int = 0,
) -> np.ndarray:
    """L2-normalised float32 rows, shape (n, d), from a two-level Gaussian mixture.

    Built cluster by cluster into one preallocated array, so peak memory stays close to
    the array itself.
    """
    rng = np.random.default_rng(seed)
    n_clusters = min(n_clusters, n)
    topics = rng.standard_normal((n_topics, d), dtype=np.float32) / np.sqrt(d)
    weights = rng.lognormal(0.0, 1.0, n_clusters)
    sizes = 1 + rng.multinomial(n - n_clusters, weights / weights.sum())
    slots = rng.permutation(n)
    X = np.empty((n, d), dtype=np.float32)
    start = 0
    for size, topic in zip(sizes, rng.integers(n_topics, size=n_clusters), strict=True):
        center = topics[topic] + 0.5 * rng.standard_normal(d, dtype=np.float32) / np.sqrt(d)
        basis = rng.standard_normal((subspace_dim, d), dtype=np.float32) / np.sqrt(d)
        spread = 0.25 * rng.lognormal(0.0, 0.3)
        latent = rng.standard_normal((size, subspace_dim), dtype=np.float32)
        rows = center + (spread / np.sqrt(subspace_dim)) * (latent @ basis)
        rows += 0.05 * rng.standard_normal((size, d), dtype=np.float32) / np.sqrt(d)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        X[slots[start : start + size]] = rows
        start += size
    return X


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> dict:
    """Both greedy runs on one matrix; prints the figures and returns them."""
    with harness.timed() as built:
        X = clustered_embeddings(args.n, args.d, n_clusters=args.clusters, seed=args.seed)
    matrix_mb = X.nbytes / 2**20
    print(
        f"data: {args.n} x {args.d} float32 ({matrix_mb:.0f} MiB), L2-normalised two-level "
        f"Gaussian mixture of {args.clusters} clusters in 60 topics (clustered, not uniform "
        f"random vectors), built in {built.wall:.1f} s"
    )
    blas_threads = max(
        (pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"),
        default=1,
    )
    load = harness.load_average()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f}, BLAS threads {blas_threads}")

    rss_start = rss_mb()
    with harness.timed() as fast_time:
        fast = kcenter_greedy(X, args.budget, random_state=args.seed)
    seconds = fast_time.wall
    rss_fast = peak_rss_mb()
    print(f"kcenter_greedy (lazy bounds, BLAS on 1 thread):    {seconds:8.2f} s")

    with harness.timed() as exact_time:
        exact = kcenter_greedy_exact(X, args.budget, random_state=args.seed)
    baseline_seconds = exact_time.wall
    print(f"kcenter_greedy_exact (plain loop, {blas_threads} BLAS threads): {baseline_seconds:8.2f} s")
    print(f"speed-up: {baseline_seconds / seconds:.1f}x")

    radius_fast = covering_radius(X, fast)
    radius_exact = covering_radius(X, exact)
    same = int(np.intersect1d(fast, exact).size)
    print(
        f"covering radius (largest distance to the nearest chosen row): fast {radius_fast:.5f}, "
        f"exact {radius_exact:.5f}, ratio {radius_fast / radius_exact:.5f}; "
        f"{same}/{fast.size} rows in common, same order: {np.array_equal(fast, exact)}"
    )
    print(
        f"peak RSS after the fast run: {rss_fast:.0f} MiB = {rss_fast / matrix_mb:.2f}x the "
        f"{matrix_mb:.0f} MiB matrix (process total, Python and libraries included); "
        f"at most {rss_fast - rss_start:.0f} MiB above the {rss_start:.0f} MiB held before it"
    )
    return {
        "benchmark": "selection_speed",
        "data": "clustered_gaussian_mixture",
        "n": args.n,
        "d": args.d,
        "budget": args.budget,
        "clusters": args.clusters,
        "seconds": round(seconds, 3),
        "baseline_seconds": round(baseline_seconds, 3),
        "speedup": round(baseline_seconds / seconds, 2),
        "radius_fast": round(radius_fast, 6),
        "radius_exact": round(radius_exact, 6),
        "radius_ratio": round(radius_fast / radius_exact, 6),
        "rows_in_common": same,
        "same_order": bool(np.array_equal(fast, exact)),
        "matrix_mb": round(matrix_mb, 1),
        "peak_rss_mb": round(rss_fast, 1),
        "memory_over_matrix": round(rss_fast / matrix_mb, 3),
        "fast_extra_mb": round(rss_fast - rss_start, 1),
        "load_average": round(load, 2),
        "baseline_blas_threads": blas_threads,
    }


def main(argv: list[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.emit(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
