"""Compiled loops of the near-duplicate index (:class:`ml.hashing.HashIndex`).

A look-up reads a few dozen runs of a table scattered over tens of megabytes, each a
contiguous stretch of about a hundred hashes. One loop per query does it all: it asks
the memory system for a run's cache lines several runs before it checks it, so that the
cache misses of a look-up overlap rather than follow one another, and checks a run with
vector instructions.

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
        address = cgutils.get_item_pointer(context, builder, array_type, view, [args[1]], wraparound=False)
        pointer = cgutils.voidptr_t
        i32 = ir.IntType(32)
        function = builder.module.declare_intrinsic(
            "llvm.prefetch", [pointer], ir.FunctionType(ir.VoidType(), [pointer, i32, i32, i32])
        )
        # Read access, keep in all cache levels, data cache.
        builder.call(function, [builder.bitcast(address, pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


# Runs whose cache lines are asked for before the run being checked.
_AHEAD = 8
# Hashes in a cache line.
_LINE = 8


@njit(cache=True, nogil=True, boundscheck=False)
def _prefetch_run(hashes, start, end):
    """Ask for every cache line of ``hashes[start:end]``."""
    for j in range(start, end, _LINE):
        _prefetch(hashes, j)
    if start < end:
        _prefetch(hashes, end - 1)


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
def table_matches(
    queries,
    shifts,
    chunk_masks,
    probe_buckets,
    probe_chunks,
    offsets,
    table_hashes,
    table_ids,
    radius,
    out,
):
    """Matches of ``queries`` among the tabled hashes (see :class:`~ml.hashing.HashIndex`).

    Probe ``p`` reads bucket ``((q >> shifts[c]) & chunk_masks[c]) ^ probe_buckets[p]``
    of chunk ``c = probe_chunks[p]``: entries ``offsets[b]:offsets[b + 1]`` of
    ``table_hashes`` (the hashes themselves, so that a run is checked as one contiguous
    stretch of memory) and ``table_ids``. A hash that several probes find is reported
    once per probe.

    A query first reads the bounds of all its probes' runs. It then checks the runs in
    order, having asked for the cache lines of the run ``_AHEAD`` places on, so that
    those arrive while the runs before them are checked. A run is counted with vector
    instructions and listed only when it holds a match.
    """
    found = 0
    probes = len(probe_buckets)
    starts = np.empty(probes, np.int64)
    ends = np.empty(probes, np.int64)
    for qi in range(len(queries)):
        q = queries[qi]
        for p in range(probes):
            c = probe_chunks[p]
            bucket = np.int64((q >> shifts[c]) & chunk_masks[c]) ^ probe_buckets[p]
            starts[p] = np.int64(offsets[bucket])
            ends[p] = np.int64(offsets[bucket + 1])
        for p in range(min(_AHEAD, probes)):
            _prefetch_run(table_hashes, starts[p], ends[p])
        for p in range(probes):
            if p + _AHEAD < probes:
                _prefetch_run(table_hashes, starts[p + _AHEAD], ends[p + _AHEAD])
            if not _count_within(q, table_hashes, starts[p], ends[p], radius):
                continue
            for j in range(starts[p], ends[p]):
                distance = _popcount(table_hashes[j] ^ q)
                if distance <= radius:
                    if found < len(out):
                        out[found, 0] = qi
                        out[found, 1] = table_ids[j]
                        out[found, 2] = distance
                    found += 1
    return found


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
