"""Exact and perceptual hashes, and a near-duplicate index over 64-bit hashes.

Perceptual hashes are unsigned 64-bit Python ints; :func:`to_signed64` and
:func:`from_signed64` map them to and from the signed range of a database BIGINT.
NumPy arrays of hashes are ``uint64``; an ``int64`` array is read as the two's-complement
storage form, the same bits.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from typing import Any

import imagehash
import numpy as np
from PIL import Image

from ml import hash_kernels

_BITS = 64
_MASK64 = (1 << _BITS) - 1
_PHASH_BASE = 64


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def phash64(image: Image.Image) -> int:
    """64-bit perceptual hash of ``image`` as an unsigned int in ``[0, 2**64)``.

    ``imagehash.phash`` (hash_size 8: the signs of the 8x8 lowest DCT frequencies of a
    32x32 grey copy, against their median) of the grey picture after an integer box
    reduction that keeps both sides at least 64 pixels. The reduction is what Pillow's
    ``reducing_gap`` does; it makes the hash several times faster on large pictures and
    nearly independent of the scale the picture was decoded at. Bit 63 is the hash's
    top-left DCT coefficient, so ``format(h, "016x")`` equals ``str()`` of the
    ``ImageHash`` of the reduced picture.
    """
    grey = image if image.mode == "L" else image.convert("L")
    factors = (max(1, grey.width // _PHASH_BASE), max(1, grey.height // _PHASH_BASE))
    if factors != (1, 1):
        grey = grey.reduce(factors)
    bits = imagehash.phash(grey, hash_size=8).hash
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big")


def to_signed64(h: int) -> int:
    """Unsigned 64-bit ``h`` as the signed int with the same bits (BIGINT storage)."""
    if not 0 <= h <= _MASK64:
        raise ValueError(f"hash {h} is outside [0, 2**64)")
    return h - (1 << _BITS) if h >> (_BITS - 1) else h


def from_signed64(v: int) -> int:
    """Inverse of :func:`to_signed64`."""
    if not -(1 << (_BITS - 1)) <= v < (1 << (_BITS - 1)):
        raise ValueError(f"value {v} is outside the signed 64-bit range")
    return v & _MASK64


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two unsigned 64-bit hashes."""
    return (a ^ b).bit_count()


def _as_uint64(hashes: Sequence[int] | np.ndarray) -> np.ndarray:
    """1-D ``uint64`` array of hashes; ``int64`` input is reinterpreted bit for bit."""
    if isinstance(hashes, np.ndarray):
        if hashes.dtype == np.int64:
            return hashes.reshape(-1).view(np.uint64)
        if hashes.dtype != np.uint64:
            raise TypeError(f"hash array must be uint64 or int64, not {hashes.dtype}")
        return hashes.reshape(-1)
    try:
        return np.fromiter((int(h) for h in hashes), dtype=np.uint64, count=len(hashes))
    except OverflowError as error:
        raise ValueError(f"a hash is outside [0, 2**64): {error}") from error


class HashIndex:
    """Near-duplicate index over 64-bit hashes: all stored hashes within ``radius`` bits.

    Multi-index hashing. The 64 bits are cut into ``m`` disjoint chunks of near-equal
    width. If two hashes differ in at most ``radius`` bits and chunk ``i`` gets a budget
    ``t_i`` with ``sum(t_i) = radius - m + 1``, some chunk differs in at most its budget
    (otherwise the total would exceed ``radius``); for ``radius < m - 1`` only the first
    ``radius + 1`` chunks are probed, with budget 0, since at most ``radius`` chunks can
    differ. A look-up enumerates, per probed chunk, every value within its budget of the
    query's chunk (the probes), reads the stored hashes filed under those values, and
    keeps the ones within ``radius``. Larger budgets go to wider chunks.

    The layout follows the size: each rebuild picks the number of chunks whose probes
    and entries per look-up cost least by :func:`_layout_cost`, so that chunks widen as
    the index grows and a look-up reads about as many entries per probe whatever the
    size. For a million hashes at radius 8 that is five chunks (13, 13, 13, 13 and 12
    bits, budgets 1, 1, 1, 1 and 0): 57 probes of about 120 entries each. For ten
    million it is four chunks of 16 bits: 188 probes of about 150 entries. ``widths``
    holds the widths of the chunks the table files hashes under (empty before the table
    is first built).

    Storage: all hashes in one growing ``uint64`` array, ordered by insertion (the
    position is the entry's id), plus a bucket table with one bucket per (probed chunk,
    value): bucket ``b`` holds entries ``_offsets[b]:_offsets[b + 1]`` of
    ``_table_hashes`` (a copy of the hashes, sorted by the chunk's value, so that a
    bucket is one contiguous run) and ``_table_ids``. Entries from :meth:`add` first go
    to an unsorted tail that look-ups scan linearly; the table is rebuilt (linear time: a
    radix sort per chunk) whenever :meth:`add_many` or a look-up finds the tail longer
    than ``max(512, tabled entries // 256)``, so a small index is only ever scanned.

    The loops over probes and entries are compiled (:mod:`ml.hash_kernels`);
    :meth:`query_many` runs a whole batch in one call.
    """

    _MIN_TAIL = 512
    _TAIL_FRACTION = 256
    # Room for matches per query in the first try of a look-up; more take a second try.
    _OUT_ROWS_PER_QUERY = 4

    def __init__(self, radius: int = 8) -> None:
        if not 0 <= radius <= _BITS:
            raise ValueError(f"radius must be within 0..{_BITS}, got {radius}")
        self.radius = radius
        self._keys: list[Any] = []
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._indexed = 0
        self.widths: tuple[int, ...] = ()
        self._shifts = np.zeros(0, dtype=np.uint64)
        self._chunk_masks = np.zeros(0, dtype=np.uint64)
        self._probe_buckets = np.zeros(0, dtype=np.int64)
        self._probe_chunks = np.zeros(0, dtype=np.int64)
        self._offsets = np.zeros(1, dtype=np.int32)
        self._table_hashes = np.zeros(0, dtype=np.uint64)
        self._table_ids = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, h: int, key: Any) -> None:
        """Store hash ``h`` (unsigned 64-bit) under ``key``; amortised O(1)."""
        if not 0 <= h <= _MASK64:
            raise ValueError(f"hash {h} is outside [0, 2**64)")
        self._reserve(len(self._keys) + 1)
        self._hashes[len(self._keys)] = h
        self._keys.append(key)

    def add_many(self, hashes: Sequence[int] | np.ndarray, keys: Sequence[Any]) -> None:
        """Store ``hashes[i]`` under ``keys[i]`` for every ``i``.

        ``hashes``: ``n`` unsigned 64-bit ints, or a ``uint64`` / ``int64`` array. A batch
        that makes the tail too long is tabled at once, in linear time.
        """
        values = _as_uint64(hashes)
        if len(values) != len(keys):
            raise ValueError(f"{len(values)} hashes but {len(keys)} keys")
        n = len(self._keys)
        self._reserve(n + len(values))
        self._hashes[n : n + len(values)] = values
        self._keys.extend(keys)
        self._table_long_tail()

    def nearest(self, h: int) -> tuple[Any, int] | None:
        """``(key, distance)`` of the closest stored hash within the radius, else ``None``.

        Ties go to the smallest distance, then to the earliest inserted entry.
        """
        hits = self.query(h)
        return hits[0] if hits else None

    def query(self, h: int) -> list[tuple[Any, int]]:
        """``(key, distance)`` of every stored hash within the radius of ``h``.

        Sorted by distance, then by insertion order.
        """
        if not 0 <= h <= _MASK64:
            raise ValueError(f"hash {h} is outside [0, 2**64)")
        return self.query_many(np.array([h], dtype=np.uint64))[0]

    def nearest_many(self, hashes: Sequence[int] | np.ndarray) -> list[tuple[Any, int] | None]:
        """:meth:`nearest` of every hash in ``hashes``, in order, computed as one batch."""
        return [hits[0] if hits else None for hits in self.query_many(hashes)]

    def query_many(self, hashes: Sequence[int] | np.ndarray) -> list[list[tuple[Any, int]]]:
        """:meth:`query` of every hash in ``hashes``, in order, computed as one batch.

        ``hashes``: unsigned 64-bit ints, or a ``uint64`` / ``int64`` array.
        """
        values = np.ascontiguousarray(_as_uint64(hashes))
        self._table_long_tail()
        results: list[list[tuple[Any, int]]] = [[] for _ in range(len(values))]
        if not len(self._keys) or not len(values):
            return results
        keys = self._keys
        queries, ids, distances = self._matches(values)
        for q, i, d in zip(queries.tolist(), ids.tolist(), distances.tolist(), strict=True):
            results[q].append((keys[i], d))
        return results

    def _matches(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(query, id, distance)`` arrays of every match of ``queries``.

        ``query`` indexes ``queries``; the triples are unique and sorted by query,
        distance, id.
        """
        n = len(self._keys)
        found = []
        if self._indexed:
            found.append(
                _run_kernel(
                    hash_kernels.table_matches,
                    queries,
                    self._shifts,
                    self._chunk_masks,
                    self._probe_buckets,
                    self._probe_chunks,
                    self._offsets,
                    self._table_hashes,
                    self._table_ids,
                    self.radius,
                    rows=len(queries) * self._OUT_ROWS_PER_QUERY,
                )
            )
        if n > self._indexed:
            found.append(
                _run_kernel(
                    hash_kernels.scan_matches,
                    queries,
                    self._hashes[self._indexed : n],
                    self._indexed,
                    self.radius,
                    rows=len(queries) * self._OUT_ROWS_PER_QUERY,
                )
            )
        matches = hash_kernels.sorted_unique(np.concatenate(found), n)
        return matches[:, 0], matches[:, 1], matches[:, 2]

    def _reserve(self, size: int) -> None:
        """Grow the hash array (doubling) so that it holds at least ``size`` entries."""
        if size > len(self._hashes):
            grown = np.zeros(max(size, 2 * len(self._hashes)), dtype=np.uint64)
            grown[: len(self._keys)] = self._hashes[: len(self._keys)]
            self._hashes = grown

    def _table_long_tail(self) -> None:
        """Rebuild the table when the untabled tail outgrows its limit."""
        tail = len(self._keys) - self._indexed
        if tail > max(self._MIN_TAIL, self._indexed // self._TAIL_FRACTION):
            self._rebuild()

    def _rebuild(self) -> None:
        """File every stored hash into the bucket table, tail included.

        The layout is chosen anew for the index's size (:func:`_layout`).
        """
        n = len(self._keys)
        hashes = self._hashes[:n]
        widths = _layout(n, self.radius)
        budgets = [t for t in _budgets(self.radius, len(widths)) if t is not None]
        widths = widths[: len(budgets)]  # only the probed chunks are tabled
        shifts = [_BITS - sum(widths[: i + 1]) for i in range(len(widths))]
        self._shifts = np.array(shifts, dtype=np.uint64)
        self._chunk_masks = np.array([(1 << w) - 1 for w in widths], dtype=np.uint64)
        orders, sizes, buckets, chunks = [], [], [], []
        base = 0
        for chunk, (shift, mask, width, budget) in enumerate(
            zip(self._shifts, self._chunk_masks, widths, budgets, strict=True)
        ):
            values = ((hashes >> shift) & mask).astype(np.uint16 if width <= 16 else np.uint32)
            orders.append(np.argsort(values, kind="stable"))
            sizes.append(np.bincount(values, minlength=1 << width))
            flips = _masks_within(width, budget)
            buckets += [base + flip for flip in flips]
            chunks += [chunk] * len(flips)
            base += 1 << width
        order = np.concatenate(orders)
        self._table_hashes = hashes.take(order)
        self._table_ids = order.astype(np.int32 if n < 2**31 else np.int64)
        # The table holds every hash once per chunk: its offsets run up to that total.
        offsets = np.zeros(base + 1, dtype=np.int64)
        np.cumsum(np.concatenate(sizes), out=offsets[1:])
        self._offsets = offsets.astype(np.int32 if offsets[-1] < 2**31 else np.int64)
        self._probe_buckets = np.array(buckets, dtype=np.int64)
        self._probe_chunks = np.array(chunks, dtype=np.int64)
        self.widths = tuple(widths)
        self._indexed = n


def _run_kernel(kernel: Any, queries: np.ndarray, *args: Any, rows: int) -> np.ndarray:
    """``(query, id, distance)`` rows from a :mod:`ml.hash_kernels` kernel, all of them.

    A kernel counts the matches it had no room for; it then runs again with room for all.
    """
    out = np.empty((max(rows, 1), 3), dtype=np.int64)
    found = kernel(queries, *args, out)
    if found > len(out):
        out = np.empty((found, 3), dtype=np.int64)
        kernel(queries, *args, out)
    return out[:found]


# The look-up's cost model (:func:`_layout_cost`), in nanoseconds, as measured with
# bench.hash_lookup: a probe (its bucket's bounds, the first cache lines of its run, the
# loop's overhead) and an entry of a run (8 bytes streamed in and compared).
_PROBE_NS = 30.0
_ENTRY_NS = 0.25
# Most chunks the 64 bits are cut into (4-bit chunks), and the widest chunk a table may
# have for ``n`` hashes: ``2**width`` buckets at most ``max(4 * n, 2**16)``.
_MAX_CHUNKS = 16
_MIN_TABLE_BITS = 16


def _layout(n: int, radius: int) -> tuple[int, ...]:
    """Chunk widths, widest first, that make look-ups among ``n`` hashes cheapest."""
    max_width = max(_MIN_TABLE_BITS, (4 * n).bit_length() - 1)
    layouts = [tuple(_BITS // m + (1 if i < _BITS % m else 0) for i in range(m)) for m in range(1, _MAX_CHUNKS + 1)]
    return min(
        (widths for widths in layouts if widths[0] <= max_width),
        key=lambda widths: _layout_cost(widths, n, radius),
    )


def _layout_cost(widths: Sequence[int], n: int, radius: int) -> float:
    """Expected nanoseconds of a look-up among ``n`` uniform hashes, by the cost model.

    Probe ``k`` of a chunk of width ``w`` reads a bucket of ``n / 2**w`` entries.
    """
    probes = entries = 0.0
    for width, budget in zip(widths, _budgets(radius, len(widths)), strict=True):
        if budget is not None:
            count = sum(math.comb(width, k) for k in range(min(budget, width) + 1))
            probes += count
            entries += count * n / 2**width
    return probes * _PROBE_NS + entries * _ENTRY_NS


def _budgets(radius: int, chunks: int) -> list[int | None]:
    """Bit budget per chunk, widest first (``None``: not probed), per the pigeonhole bound."""
    if radius < chunks - 1:
        return [0 if i <= radius else None for i in range(chunks)]
    total = radius - chunks + 1
    return [total // chunks + (1 if i < total % chunks else 0) for i in range(chunks)]


def _masks_within(width: int, budget: int) -> list[int]:
    """Every ``width``-bit value with at most ``budget`` set bits."""
    return [
        sum(1 << b for b in bits)
        for k in range(min(budget, width) + 1)
        for bits in itertools.combinations(range(width), k)
    ]
