"""Compiled loops of the near-duplicate index (:class:`ml.hashing.HashIndex`).

A look-up reads a few hundred short runs of a table scattered over tens of megabytes.
In NumPy each step of that is a separate pass over an array of a few thousand entries;
here one loop per query does it all, and the first of its two passes asks the memory
system for every run's cache lines before the second reads them, so that the cache
misses of a look-up overlap rather than follow one another.

Both kernels write matches to ``out`` (rows of query, id, distance) as long as it has
room and return how many there were: a caller whose ``out`` was too small calls again
with one of the returned size. They release the GIL.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _popcount(typingctx, value):
    """Set bits of an unsigned 32- or 64-bit integer (LLVM's ``ctpop``), as ``int64``."""
    if not isinstance(value, types.Integer) or value.signed:
        return None

    def codegen(context, builder, signature, args):
        count = builder.ctpop(args[0])
        return builder.zext(count, ir.IntType(64)) if value.bitwidth < 64 else count

    return types.int64(value), codegen


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask for the cache line holding ``array[index]`` (a hint: never faults)."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        address = cgutils.get_item_pointer(
            context, builder, array_type, view, [args[1]], wraparound=False
        )
        pointer = cgutils.voidptr_t
        i32 = ir.IntType(32)
        function = builder.module.declare_intrinsic(
            "llvm.prefetch", [pointer], ir.FunctionType(ir.VoidType(), [pointer, i32, i32, i32])
        )
        # Read access, keep in all cache levels, data cache.
        builder.call(function, [builder.bitcast(address, pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(cache=True, nogil=True, boundscheck=False)
def fold32(value, keep):
    """The bits of ``value`` under mask ``keep``, folded to 32: low half XOR high half.

    Folding only cancels differences, so for any two hashes the prints differ in at most
    as many bits as the kept bits do.
    """
    kept = value & keep
    return np.uint32((kept ^ (kept >> np.uint64(32))) & np.uint64(0xFFFFFFFF))


@njit(cache=True, nogil=True, boundscheck=False)
def fold32_all(values, keep):
    """:func:`fold32` of every value of a ``uint64`` array, as a ``uint32`` array."""
    prints = np.empty(len(values), np.uint32)
    for i in range(len(values)):
        prints[i] = fold32(values[i], keep)
    return prints


@njit(cache=True, nogil=True, boundscheck=False)
def table_matches(
    queries,
    shifts,
    chunk_masks,
    keeps,
    probe_buckets,
    probe_chunks,
    probe_slack,
    offsets,
    prints,
    ids,
    hashes,
    radius,
    out,
):
    """Matches of ``queries`` among the tabled hashes (see :class:`~ml.hashing.HashIndex`).

    Probe ``p`` reads bucket ``((q >> shifts[c]) & chunk_masks[c]) ^ probe_buckets[p]``
    of chunk ``c = probe_chunks[p]``: entries ``offsets[b]:offsets[b + 1]`` of
    ``prints`` / ``ids``. An entry whose print is within ``probe_slack[p]`` bits of the
    query's print (the radius less the bits the probe flips inside the chunk, which the
    print leaves out) is checked against its full hash, ``hashes[ids[j]]``. A hash that
    several probes find is reported once per probe.
    """
    found = 0
    probes = len(probe_buckets)
    chunks = len(shifts)
    starts = np.empty(probes, np.int64)
    ends = np.empty(probes, np.int64)
    query_prints = np.empty(chunks, np.uint32)
    for qi in range(len(queries)):
        q = queries[qi]
        for c in range(chunks):
            query_prints[c] = fold32(q, keeps[c])
        for p in range(probes):
            c = probe_chunks[p]
            bucket = np.int64((q >> shifts[c]) & chunk_masks[c]) ^ probe_buckets[p]
            start = np.int64(offsets[bucket])
            end = np.int64(offsets[bucket + 1])
            starts[p] = start
            ends[p] = end
            # A cache line holds 16 prints: the run's first and last lines, and the one
            # after the first (a run of up to 33 prints spans at most three). The
            # addresses, not branches, depend on the run's ends, so that no branch waits
            # for the offsets to arrive from memory.
            last = max(start, end - 1)
            _prefetch(prints, start)
            _prefetch(prints, last)
            _prefetch(prints, min(start + 16, last))
        for p in range(probes):
            query_print = query_prints[probe_chunks[p]]
            slack = probe_slack[p]
            for j in range(starts[p], ends[p]):
                if _popcount(prints[j] ^ query_print) <= slack:
                    id_ = np.int64(ids[j])
                    distance = _popcount(hashes[id_] ^ q)
                    if distance <= radius:
                        if found < len(out):
                            out[found, 0] = qi
                            out[found, 1] = id_
                            out[found, 2] = distance
                        found += 1
    return found


@njit(cache=True, nogil=True, boundscheck=False, inline="never")
def _count_within(query, hashes, start, end, radius):
    """How many of ``hashes[start:end]`` are within ``radius`` of ``query``.

    Kept out of line, and over a slice rather than a range of indices: so written, and
    only so, the loop is compiled to vector instructions (three times as fast).
    """
    tile = hashes[start:end]
    count = 0
    for j in range(len(tile)):
        count += _popcount(tile[j] ^ query) <= radius
    return count


@njit(cache=True, nogil=True, boundscheck=False)
def scan_matches(queries, hashes, first_id, radius, out):
    """Matches of ``queries`` among ``hashes`` by a linear scan; ids start at ``first_id``.

    Tile by tile of ``hashes``, small enough to stay in cache while every query passes
    over it. A query counts its matches in a tile first and lists them only where there
    are some.
    """
    found = 0
    tile = 1 << 15
    for tile_start in range(0, len(hashes), tile):
        tile_end = min(tile_start + tile, len(hashes))
        for qi in range(len(queries)):
            q = queries[qi]
            if not _count_within(q, hashes, tile_start, tile_end, radius):
                continue
            for j in range(tile_start, tile_end):
                distance = _popcount(hashes[j] ^ q)
                if distance <= radius:
                    if found < len(out):
                        out[found, 0] = qi
                        out[found, 1] = first_id + j
                        out[found, 2] = distance
                    found += 1
    return found


@njit(cache=True, nogil=True, boundscheck=False)
def sorted_unique(matches, ids):
    """Rows of ``matches`` (query, id, distance) sorted by query, distance, id, each once.

    ``ids``: one more than the largest id (the index's size). A row is packed into one
    sortable int64 (distances are 0..64, hence the 65); a row that several probes found
    sits next to its copies once sorted.
    """
    keys = (matches[:, 0] * 65 + matches[:, 2]) * ids + matches[:, 1]
    keys.sort()
    rows = np.empty((len(keys), 3), np.int64)
    count = 0
    for i in range(len(keys)):
        if i and keys[i] == keys[i - 1]:
            continue
        rest = keys[i] // ids
        rows[count, 0] = rest // 65
        rows[count, 1] = keys[i] % ids
        rows[count, 2] = rest % 65
        count += 1
    return rows[:count]

