"""Exact and perceptual hashes, and a near-duplicate index over 64-bit hashes.

Perceptual hashes are unsigned 64-bit Python ints; :func:`to_signed64` and
:func:`from_signed64` map them to and from the signed range of a database BIGINT.
NumPy arrays of hashes are ``uint64``; an ``int64`` array is read as the two's-complement
storage form, the same bits.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

import imagehash
import numpy as np
from PIL import Image

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

    Multi-index hashing. The 64 bits are cut into four disjoint chunks of 18, 16, 15
    and 15 bits. If two hashes differ in at most ``radius`` bits and chunk ``i`` gets a
    budget ``t_i`` with ``sum(t_i) = radius - 3``, some chunk differs in at most its
    budget (otherwise the total would exceed ``radius``); for ``radius < 3`` only the
    first ``radius + 1`` chunks are probed, with budget 0, since at most ``radius``
    chunks can differ. A look-up enumerates, per probed chunk, every value within its
    budget of the query's chunk (the probes), reads the stored hashes filed under those
    values, and keeps the ones within ``radius``. Larger budgets go to wider chunks, so
    that their many probes each find few entries. With radius 8 the budgets are
    (2, 1, 1, 1): 221 probes and, for a million random hashes, about 1 900 candidates
    per look-up. The widths suit indexes of about 1e5 to 1e7 hashes.

    Storage: all hashes in one growing ``uint64`` array, ordered by insertion (the
    position is the entry's id), plus a bucket table with one bucket per (chunk, value):
    bucket ``b`` holds ``_bounds[b, 1]`` entries of ``_bucket_hashes`` / ``_bucket_ids``
    ending at ``_bounds[b, 0]``. Entries from :meth:`add` first go to an unsorted tail
    that look-ups scan linearly; the table is rebuilt (linear time: a radix sort per
    chunk) whenever :meth:`add_many` or a look-up finds the tail longer than
    ``max(512, tabled entries // 256)``, so a small index is only ever scanned.

    Batches: :meth:`query_many` does the same look-ups for a block of queries at once, in
    a fixed number of NumPy calls per block instead of per query. It reads the bucket
    table as aligned rows of ``_ROW`` entries (``_bucket_rows``, the same memory as
    ``_bucket_hashes``, padded); bucket ``b`` overlaps ``_row_spans[b, 1]`` rows, from
    row ``_row_spans[b, 0]`` on.
    """

    _WIDTHS = (18, 16, 15, 15)
    _MIN_TAIL = 512
    _TAIL_FRACTION = 256
    _ROW_BITS = 2
    _ROW = 1 << _ROW_BITS
    _BLOCK_QUERIES = 1024
    _BLOCK_WORK = 1 << 19

    def __init__(self, radius: int = 8) -> None:
        if not 0 <= radius <= _BITS:
            raise ValueError(f"radius must be within 0..{_BITS}, got {radius}")
        self.radius = radius
        self._keys: list[Any] = []
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._indexed = 0
        widths = self._WIDTHS
        self._shifts = [_BITS - sum(widths[: i + 1]) for i in range(len(widths))]
        self._chunk_masks = [(1 << w) - 1 for w in widths]
        self._bases = [sum(1 << w for w in widths[:i]) for i in range(len(widths))]
        self._bounds = np.zeros((0, 2), dtype=np.int64)
        self._bucket_hashes = np.zeros(0, dtype=np.uint64)
        self._bucket_rows = np.zeros((0, self._ROW), dtype=np.uint64)
        self._row_spans = np.zeros((0, 2), dtype=np.int64)
        self._table_reads = 0
        self._bucket_ids = np.zeros(0, dtype=np.int64)
        masks, counts = [], []
        for width, base, budget in zip(
            widths, self._bases, _budgets(radius, len(widths)), strict=True
        ):
            chunk_masks = _masks_within(width, budget) if budget is not None else []
            masks.append(np.asarray(chunk_masks, dtype=np.int64) + base)
            counts.append(len(chunk_masks))
        self._probe_masks = np.concatenate(masks)
        self._probe_counts = np.array(counts)
        self._shift_array = np.array(self._shifts, dtype=np.uint64)
        self._chunk_mask_array = np.array(self._chunk_masks, dtype=np.uint64)

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
        self._table_long_tail()
        n = len(self._keys)
        query = np.uint64(h)
        hits = self._table_hits(h, query) if self._indexed else set()
        if n > self._indexed:
            tail = np.bitwise_count(self._hashes[self._indexed : n] ^ query)
            close = (tail <= self.radius).nonzero()[0]
            hits.update(zip(tail[close].tolist(), (close + self._indexed).tolist(), strict=True))
        return [(self._keys[i], d) for d, i in sorted(hits)]

    def nearest_many(self, hashes: Sequence[int] | np.ndarray) -> list[tuple[Any, int] | None]:
        """:meth:`nearest` of every hash in ``hashes``, in order, computed as one batch."""
        return [hits[0] if hits else None for hits in self.query_many(hashes)]

    def query_many(self, hashes: Sequence[int] | np.ndarray) -> list[list[tuple[Any, int]]]:
        """:meth:`query` of every hash in ``hashes``, in order, computed as one batch.

        ``hashes``: unsigned 64-bit ints, or a ``uint64`` / ``int64`` array. The probes,
        bucket reads, verification and de-duplication of a block of queries take a fixed
        number of NumPy calls, so the per-call overhead that dominates :meth:`query` is
        shared by the whole block. Blocks are sized so that the candidates of one block
        stay near ``_BLOCK_WORK`` entries, which bounds the memory of a large batch.
        """
        values = _as_uint64(hashes)
        self._table_long_tail()
        results: list[list[tuple[Any, int]]] = [[] for _ in range(len(values))]
        if not len(self._keys) or not len(values):
            return results
        keys = self._keys
        step = self._block_queries()
        for start in range(0, len(values), step):
            queries, ids, distances = self._block_hits(values[start : start + step])
            for q, i, d in zip(queries.tolist(), ids.tolist(), distances.tolist(), strict=True):
                results[start + q].append((keys[i], d))
        return results

    def _block_queries(self) -> int:
        """Queries per block of :meth:`query_many`: about ``_BLOCK_WORK`` entries each."""
        per_query = len(self._keys) - self._indexed + self._table_reads
        return max(1, min(self._BLOCK_QUERIES, self._BLOCK_WORK // max(per_query, 1)))

    def _block_hits(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(query, id, distance)`` arrays of every match of the queries in ``block``.

        ``query`` indexes ``block``; the triples are unique and sorted by query, distance,
        id.
        """
        n = len(self._keys)
        queries, ids, distances = [], [], []
        if self._indexed:
            query, id_, distance = self._block_table_hits(block)
            queries.append(query)
            ids.append(id_)
            distances.append(distance)
        if n > self._indexed:
            tail = np.bitwise_count(block[:, None] ^ self._hashes[self._indexed : n])
            query, col = (tail <= self.radius).nonzero()
            queries.append(query)
            ids.append(col + self._indexed)
            distances.append(tail[query, col])
        # One sortable int64 per match: query, then distance, then id. Sorted, a match
        # that several chunks found sits next to its copies, which are dropped.
        packed = (
            np.concatenate(queries).astype(np.int64) * (_BITS + 1) + np.concatenate(distances)
        ) * n + np.concatenate(ids)
        packed.sort()
        first = np.ones(len(packed), dtype=bool)
        np.not_equal(packed[1:], packed[:-1], out=first[1:])
        packed = packed[first]
        rest, id_ = np.divmod(packed, n)
        query, distance = np.divmod(rest, _BITS + 1)
        return query, id_, distance

    def _block_table_hits(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(query, id, distance)`` of the tabled entries within the radius of ``block``.

        Every table row that overlaps a probed bucket is copied once per probe: ``take``
        of 32-byte rows runs a tight loop that keeps many cache misses in flight, where
        gathering single entries or unaligned windows costs more per entry. A row's
        entries outside the probed bucket are tested too: a match among them is a stored
        hash within the radius all the same, also found through its own bucket, so only
        the padding after the table's end is dropped. A match can appear several times.
        """
        bits, probes = self._ROW_BITS, len(self._probe_masks)
        chunks = ((block[:, None] >> self._shift_array) & self._chunk_mask_array).astype(np.int64)
        buckets = (chunks.repeat(self._probe_counts, axis=1) ^ self._probe_masks).ravel()
        spans = self._row_spans.take(buckets, axis=0)
        counts = spans[:, 1]
        # In the spans' dtype (int32 unless the table is huge): an int64 cumsum is ~10x
        # slower.
        last_rows = counts.cumsum(dtype=counts.dtype)
        # Read k is table row (first row of bucket j) + k - (first read of bucket j).
        rows = (spans[:, 0] - (last_rows - counts)).repeat(counts)
        rows += np.arange(len(rows), dtype=rows.dtype)
        found = self._bucket_rows.take(rows, axis=0).reshape(-1)
        per_query = np.diff(last_rows[probes - 1 :: probes], prepend=0)
        np.bitwise_xor(found, block.repeat(per_query << bits), out=found)
        distances = np.bitwise_count(found)
        at = np.flatnonzero(distances <= self.radius)
        read = at >> bits
        positions = (rows.take(read).astype(np.int64) << bits) + (at & (self._ROW - 1))
        inside = positions < len(self._bucket_ids)
        return (
            np.searchsorted(per_query.cumsum(), read[inside], side="right"),
            self._bucket_ids.take(positions[inside]),
            distances.take(at[inside]),
        )

    def _table_hits(self, h: int, query: np.uint64) -> set[tuple[int, int]]:
        """``(distance, id)`` of the tabled entries within the radius of ``h``."""
        chunks = np.array(
            [(h >> s) & m for s, m in zip(self._shifts, self._chunk_masks, strict=True)],
            dtype=np.int64,
        )
        buckets = self._probe_masks ^ chunks.repeat(self._probe_counts)
        bounds = self._bounds.take(buckets, axis=0)
        at = _expand_runs(bounds[:, 0], bounds[:, 1])
        distances = np.bitwise_count(self._bucket_hashes[at] ^ query)
        close = (distances <= self.radius).nonzero()[0]
        return set(
            zip(distances[close].tolist(), self._bucket_ids[at[close]].tolist(), strict=True)
        )

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
        """File every stored hash into the bucket table, tail included."""
        n = len(self._keys)
        hashes = self._hashes[:n]
        orders, sizes = [], []
        for shift, width in zip(self._shifts, self._WIDTHS, strict=True):
            chunk = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
            chunk = chunk.astype(np.uint16 if width <= 16 else np.uint32)
            orders.append(np.argsort(chunk, kind="stable"))
            sizes.append(np.bincount(chunk, minlength=1 << width))
        order = np.concatenate(orders)
        size = np.concatenate(sizes)
        self._bucket_ids = order.astype(np.int32 if n < 2**31 else np.int64)
        # Padded to whole rows of ``_ROW`` entries, read as such by query_many.
        padded = np.zeros(-(-len(order) // self._ROW) * self._ROW, dtype=np.uint64)
        self._bucket_hashes = padded[: len(order)]
        # ``order`` is in range: "clip" changes nothing but lets take write to ``out``
        # directly.
        np.take(hashes, order, out=self._bucket_hashes, mode="clip")
        self._bucket_rows = padded.reshape(-1, self._ROW)
        ends = np.cumsum(size)
        bounds = np.stack([ends, size], axis=1)
        firsts = (ends - size) >> self._ROW_BITS
        last = (ends + (self._ROW - 1)) >> self._ROW_BITS
        spans = np.stack([firsts, last - firsts], axis=1)
        small = len(order) < 2**31
        self._bounds = bounds.astype(np.int32) if small else bounds
        self._row_spans = spans.astype(np.int32) if small else spans
        self._indexed = n
        # Entries one look-up reads from the table: a probe reads its bucket's entries and
        # up to two rows' worth around them.
        sizes = np.repeat([1 << w for w in self._WIDTHS], self._probe_counts)
        self._table_reads = len(sizes) * 2 * self._ROW + int((n / sizes).sum())


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


def _expand_runs(ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions of the runs ``[ends[j] - lengths[j], ends[j])`` concatenated, vectorised."""
    out_ends = lengths.cumsum()
    return np.arange(out_ends[-1]) + (ends - out_ends).repeat(lengths)
