"""Benchmark: lazy k-center greedy against the plain one-pass-per-pick loop.

    python -m bench.selection_speed [--n 1000000 --d 384 --budget 1000]

Both run on the same synthetic embeddings in the same process. Prints both times, the
speed-up, both covering radii (largest distance from a row to its nearest chosen row)
and peak memory, then one JSON line.

The embeddings are clustered, not uniform: isotropic random vectors in 384-D are a poor
model of image embeddings, since all their pairwise distances are nearly equal. Rows
come from a two-level Gaussian mixture (topics, then clusters of log-normal sizes
around them), each cluster spread over its own 16-dimensional subspace plus a little
isotropic noise, L2-normalised.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

from ml.selection import covering_radius, kcenter_greedy, kcenter_greedy_exact


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    X = clustered_embeddings(args.n, args.d, n_clusters=args.clusters, seed=args.seed)
    matrix_mb = X.nbytes / 2**20
    print(
        f"data: {args.n} x {args.d} float32 ({matrix_mb:.0f} MiB), L2-normalised Gaussian "
        f"mixture of {args.clusters} clusters in 60 topics (clustered data, not uniform "
        f"random vectors), built in {time.perf_counter() - t0:.1f} s"
    )
    rss_before = peak_rss_mb()

    t0 = time.perf_counter()
    fast = kcenter_greedy(X, args.budget, random_state=args.seed)
    seconds = time.perf_counter() - t0
    rss_fast = peak_rss_mb()
    print(f"kcenter_greedy (lazy bounds):      {seconds:8.2f} s")

    t0 = time.perf_counter()
    exact = kcenter_greedy_exact(X, args.budget, random_state=args.seed)
    baseline_seconds = time.perf_counter() - t0
    print(f"kcenter_greedy_exact (plain loop): {baseline_seconds:8.2f} s")

    radius_fast = covering_radius(X, fast)
    radius_exact = covering_radius(X, exact)
    same = int(np.intersect1d(fast, exact).size)
    print(f"speed-up: {baseline_seconds / seconds:.1f}x")
    print(f"covering radius: fast {radius_fast:.5f}, exact {radius_exact:.5f}, "
          f"ratio {radius_fast / radius_exact:.5f}; {same}/{args.budget} rows in common")
    print(f"peak RSS: {rss_before:.0f} MiB after building the data, {rss_fast:.0f} MiB after "
          f"the fast run ({rss_fast / matrix_mb:.2f}x the matrix), {peak_rss_mb():.0f} MiB overall")
    result = {
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
        "matrix_mb": round(matrix_mb, 1),
        "peak_rss_mb": round(rss_fast, 1),
        "memory_over_matrix": round(rss_fast / matrix_mb, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
