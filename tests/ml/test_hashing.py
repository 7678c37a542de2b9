"""Hashes and the near-duplicate index."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
from unittest import mock

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ml import hashing
from ml.hashing import HashIndex, from_signed64, hamming, phash64, sha256_hex, to_signed64
from ml.ingest import analyse
from ml.quality import QualityConfig
from tests import imagefiles

LENIENT = QualityConfig(min_bytes=0, min_width=1, min_height=1)
SEEDS = range(20)


def phash_of(data: bytes) -> int:
    return analyse(data, name="f.jpg", config=LENIENT).phash


@pytest.fixture(scope="module")
def originals() -> dict[int, bytes]:
    return {seed: imagefiles.jpeg_bytes(seed) for seed in SEEDS}


@pytest.fixture(scope="module")
def original_hashes(originals) -> dict[int, int]:
    return {seed: phash_of(data) for seed, data in originals.items()}


def test_sha256_hex():
    assert sha256_hex(b"veil") == hashlib.sha256(b"veil").hexdigest()


def test_phash64_is_imagehash_phash_of_the_reduced_grey_picture():
    picture = imagefiles.photo(1, size=(640, 480))
    h = phash64(picture)
    assert 0 <= h < 2**64
    reduced = picture.convert("L").reduce((10, 7))
    assert format(h, "016x") == str(imagehash.phash(reduced, hash_size=8))
    assert phash64(picture.convert("L")) == h


@pytest.mark.parametrize("h", [0, 1, 2**63 - 1, 2**63, 2**64 - 1])
def test_signed_storage_round_trips(h):
    v = to_signed64(h)
    assert -(2**63) <= v < 2**63
    assert from_signed64(v) == h
    assert np.array([v], dtype=np.int64).view(np.uint64)[0] == h


def test_signed_storage_rejects_out_of_range_values():
    with pytest.raises(ValueError):
        to_signed64(2**64)
    with pytest.raises(ValueError):
        to_signed64(-1)
    with pytest.raises(ValueError):
        from_signed64(2**63)


def test_hamming():
    assert hamming(0, 2**64 - 1) == 64
    assert hamming(0b1011, 0b0001) == 2


@pytest.mark.parametrize(
    "variant",
    [
        lambda data: imagefiles.resized(data, 0.5),
        lambda data: imagefiles.resized(data, 1.5),
        lambda data: imagefiles.recompressed(data, 40),
        lambda data: imagefiles.cropped(data, 0.03),
    ],
    ids=["half-size", "enlarged", "quality-40", "cropped-3pc"],
)
def test_near_duplicates_hash_within_8_bits(originals, original_hashes, variant):
    distances = [hamming(original_hashes[s], phash_of(variant(originals[s]))) for s in SEEDS]
    assert max(distances) <= 8, distances


def test_different_pictures_hash_more_than_8_bits_apart(original_hashes):
    distances = [hamming(a, b) for a, b in itertools.combinations(original_hashes.values(), 2)]
    assert min(distances) > 8


def random_hashes(rng: random.Random, count: int) -> list[int]:
    return [rng.getrandbits(64) for _ in range(count)]


def flip_bits(rng: random.Random, h: int, count: int) -> int:
    for bit in rng.sample(range(64), count):
        h ^= 1 << bit
    return h


def brute_force(stored: list[int] | np.ndarray, query: int, radius: int) -> list[tuple[int, int]]:
    distances = np.bitwise_count(np.asarray(stored, dtype=np.uint64) ^ np.uint64(query))
    hits = [(int(key), int(distances[key])) for key in np.flatnonzero(distances <= radius)]
    return sorted(hits, key=lambda hit: (hit[1], hit[0]))


def planted_case(radius: int) -> tuple[list[int], list[int]]:
    """Random stored hashes and queries, with neighbours planted at exactly r and r + 1.

    Queries: hashes at r and r + 1 bits from a stored one, fresh random hashes, and
    stored hashes themselves (found through every chunk).
    """
    rng = random.Random(radius)
    stored = random_hashes(rng, 3000)
    planted = []
    for source in rng.sample(stored, 100):
        planted += [flip_bits(rng, source, radius), flip_bits(rng, source, radius + 1)]
    stored += planted[: len(planted) // 2]
    queries = planted[len(planted) // 2 :] + random_hashes(rng, 50) + rng.sample(stored, 50)
    return stored, queries


def three_indexes(stored: list[int], radius: int) -> tuple[HashIndex, HashIndex, HashIndex]:
    """``stored`` (keys 0, 1, ...) filed in bulk, one by one, and mixed.

    The mixed index ends with entries added one by one and not yet tabled.
    """
    bulk = HashIndex(radius=radius)
    bulk.add_many(stored, list(range(len(stored))))
    incremental = HashIndex(radius=radius)
    for key, h in enumerate(stored):
        incremental.add(h, key)
    mixed = HashIndex(radius=radius)
    mixed.add_many(stored[:1000], list(range(1000)))
    for key, h in enumerate(stored[1000:], start=1000):
        mixed.add(h, key)
        if key % 700 == 0:
            mixed.query(h)
    return bulk, incremental, mixed


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_index_matches_brute_force(radius):
    stored, queries = planted_case(radius)
    bulk, incremental, mixed = three_indexes(stored, radius)

    for query in queries:
        expected = brute_force(stored, query, radius)
        for index in (bulk, incremental, mixed):
            assert index.query(query) == expected
            assert index.nearest(query) == (expected[0] if expected else None)
    assert any(brute_force(stored, q, radius) for q in queries)
    assert len(bulk) == len(incremental) == len(mixed) == len(stored)


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_query_many_and_nearest_many_equal_query_and_nearest(radius):
    stored, queries = planted_case(radius)
    expected = [brute_force(stored, q, radius) for q in queries]
    # Batched look-ups first: the one-by-one index is tabled by query_many itself.
    for index in three_indexes(stored, radius):
        batched = index.query_many(queries)
        nearest = index.nearest_many(np.array(queries, dtype=np.uint64))
        assert batched == [index.query(q) for q in queries] == expected
        assert nearest == [index.nearest(q) for q in queries]
    assert any(hits and hits[-1][1] == radius for hits in expected)


def test_query_many_sees_entries_added_since_the_last_rebuild():
    rng = random.Random(5)
    stored = random_hashes(rng, 5000)
    index = HashIndex(radius=8)
    index.add_many(stored, list(range(len(stored))))
    base = rng.getrandbits(64)
    queries = [base, stored[17], rng.getrandbits(64)]
    index.add(flip_bits(rng, base, 8), "pending-at-radius")
    index.add(flip_bits(rng, base, 9), "pending-beyond")
    index.add(base, "pending-exact")
    index.add(stored[17], "pending-copy")

    hits = index.query_many(queries)
    assert hits == [index.query(q) for q in queries]
    assert hits[0][:2] == [("pending-exact", 0), ("pending-at-radius", 8)]
    assert "pending-beyond" not in [key for key, _ in hits[0]]
    assert hits[1][:2] == [(17, 0), ("pending-copy", 0)]
    assert index.nearest_many(queries)[:2] == [("pending-exact", 0), (17, 0)]

    index.add_many(random_hashes(rng, 5000), list(range(5000, 10000)))  # tables them all
    assert index.query_many(queries) == [index.query(q) for q in queries]
    assert index.query_many(queries)[0][:2] == [("pending-exact", 0), ("pending-at-radius", 8)]


def test_query_many_reads_buckets_longer_than_a_table_block():
    rng = random.Random(11)
    base = rng.getrandbits(64)
    # Near copies of one hash share most chunks: buckets of hundreds of entries, and
    # the same hash several times (ties go to the earlier entry).
    stored = [flip_bits(rng, base, rng.randint(0, 12)) for _ in range(3000)]
    stored += random_hashes(rng, 3000)
    queries = [flip_bits(rng, base, rng.randint(0, 4)) for _ in range(40)] + stored[-10:]
    index = HashIndex(radius=8)
    index.add_many(stored, list(range(len(stored))))

    batched = index.query_many(queries)
    assert batched == [brute_force(stored, q, 8) for q in queries]
    assert sum(map(len, batched)) > 10 * len(queries)


def test_query_many_returns_every_match_when_they_outnumber_the_first_try(monkeypatch):
    stored, queries = planted_case(3)
    index = HashIndex(radius=3)
    index.add_many(stored, list(range(len(stored))))
    for pending, h in enumerate(stored[:20]):
        index.add(h, f"pending-{pending}")  # the tail's scan gets too many matches too
    queries += stored[:20]
    expected = [index.query(q) for q in queries]
    # Room for one match per batch on the first try: both kernels must run again.
    monkeypatch.setattr(HashIndex, "_OUT_ROWS_PER_QUERY", 0)
    batched = index.query_many(queries)
    assert batched == expected
    assert sum(map(len, batched)) > 100
    assert all((f"pending-{i}", 0) in batched[-20 + i] for i in range(20))


def test_look_ups_read_64_bit_offsets_and_ids_as_a_huge_table_has_them():
    stored, queries = planted_case(8)
    index = HashIndex(radius=8)
    index.add_many(stored, list(range(len(stored))))
    expected = index.query_many(queries)
    # Past 2**31 table entries the rebuild stores these as int64; the kernel reads both.
    index._offsets = index._offsets.astype(np.int64)
    index._table_ids = index._table_ids.astype(np.int64)
    assert index.query_many(queries) == expected == [brute_force(stored, q, 8) for q in queries]


# Every family of layout the cost model picks between 600 and 100 million hashes.
LAYOUTS = [
    (22, 21, 21),
    (16, 16, 16, 16),
    (13, 13, 13, 13, 12),
    (11, 11, 11, 11, 10, 10),
    (8, 7, 7, 7, 7, 7, 7, 7, 7),
    (5,) * 12 + (4,),
]


@pytest.mark.parametrize("widths", LAYOUTS, ids=lambda widths: f"{len(widths)}-chunks")
@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_every_layout_matches_brute_force(monkeypatch, widths, radius):
    monkeypatch.setattr(hashing, "_layout", lambda n, radius: widths)
    stored, queries = planted_case(radius)
    index = HashIndex(radius=radius)
    index.add_many(stored, list(range(len(stored))))
    assert index.widths == widths[: radius + 1]
    assert index.query_many(queries) == [brute_force(stored, q, radius) for q in queries]


hashes_near_a_few = st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4).flatmap(
    lambda bases: st.lists(
        st.tuples(st.sampled_from(bases), st.sets(st.integers(0, 63), max_size=14)).map(
            lambda pair: pair[0] ^ sum(1 << bit for bit in pair[1])
        ),
        min_size=1,
        max_size=80,
    )
)


@settings(max_examples=150, deadline=None)
@given(
    stored=hashes_near_a_few,
    queries=st.lists(st.integers(0, 2**64 - 1), max_size=5),
    radius=st.integers(0, 14),
    widths=st.sampled_from(LAYOUTS),
)
def test_any_layout_finds_exactly_what_a_scan_finds(stored, queries, radius, widths):
    # Clustered hashes (near copies of a few) fill a few buckets and leave the rest empty.
    with mock.patch.object(hashing, "_layout", lambda n, radius: widths):
        index = HashIndex(radius=radius)
        index.add_many(stored, list(range(len(stored))))
        index._rebuild()  # table even a handful of hashes
    queries = queries + stored[:3]
    assert index.query_many(queries) == [brute_force(stored, q, radius) for q in queries]


def test_layout_widens_its_chunks_as_the_index_grows():
    # Chunks (and so buckets) widen with the size: entries per probe stay about the
    # same, and look-ups stay sublinear. Every layout cuts all 64 bits.
    sizes = [600, 100_000, 1_000_000, 10_000_000, 100_000_000]
    layouts = [hashing._layout(n, 8) for n in sizes]
    assert layouts[2] == (13, 13, 13, 13, 12)
    assert all(sum(widths) == 64 for widths in layouts)
    widest = [widths[0] for widths in layouts]
    assert widest == sorted(widest) and widest[0] < widest[-1]
    costs = [hashing._layout_cost(widths, n, 8) for widths, n in zip(layouts, sizes, strict=True)]
    assert costs[-1] / costs[0] < sizes[-1] / sizes[0] / 1000
    # The layout is the cheapest by the model of all that fit the size.
    for widths, n in zip(layouts, sizes, strict=True):
        assert hashing._layout_cost(widths, n, 8) <= hashing._layout_cost((16,) * 4, n, 8)


def test_rebuild_changes_the_layout_as_the_index_grows_and_keeps_every_hash():
    rng = random.Random(3)
    stored = random_hashes(rng, 200_000)
    index = HashIndex(radius=8)
    index.add_many(stored[:1000], list(range(1000)))
    small = index.widths
    index.add_many(stored[1000:], list(range(1000, len(stored))))
    assert small == hashing._layout(1000, 8) != index.widths == hashing._layout(200_000, 8)
    queries = [flip_bits(rng, h, 8) for h in rng.sample(stored, 40)] + stored[:20]
    array = np.array(stored, dtype=np.uint64)
    assert index.query_many(queries) == [brute_force(array, q, 8) for q in queries]


def test_query_many_on_an_empty_index_and_for_an_empty_batch():
    empty = HashIndex()
    assert empty.query_many([1, 2**64 - 1]) == [[], []]
    assert empty.nearest_many(np.array([5], dtype=np.uint64)) == [None]
    assert empty.query_many([]) == []
    assert empty.nearest_many([]) == []

    untabled = HashIndex(radius=3)
    untabled.add_many([0b1, 0b11, 2**64 - 1], ["a", "b", "c"])
    assert untabled.query_many([]) == []
    assert untabled.query_many(np.zeros(0, dtype=np.uint64)) == []
    assert untabled.nearest_many([]) == []
    assert untabled.query_many([0, 0xF << 60]) == [[("a", 1), ("b", 2)], []]
    assert untabled.nearest_many([0, 0xF << 60]) == [("a", 1), None]


def test_index_finds_hashes_at_exactly_the_radius_and_not_beyond():
    rng = random.Random(7)
    base = rng.getrandbits(64)
    index = HashIndex(radius=8)
    index.add(flip_bits(rng, base, 8), "at-radius")
    index.add(flip_bits(rng, base, 9), "beyond")
    assert index.query(base) == [("at-radius", 8)]


def test_nearest_prefers_smaller_distance_then_earlier_insertion():
    index = HashIndex(radius=8)
    index.add(0b111, "three-bits")
    index.add(0b1, "first-one-bit")
    index.add(0b10, "second-one-bit")
    index.add(0b1, "same-hash-later")
    assert index.nearest(0) == ("first-one-bit", 1)
    assert [key for key, _ in index.query(0)] == [
        "first-one-bit",
        "second-one-bit",
        "same-hash-later",
        "three-bits",
    ]
    assert HashIndex().nearest(0) is None
    assert index.nearest_many([0, 0b111]) == [("first-one-bit", 1), ("three-bits", 0)]
    assert index.query_many([0]) == [index.query(0)]


def test_add_many_reads_int64_arrays_as_stored_bigints():
    hashes = [2**64 - 1, 2**63, 5]
    signed = np.array([to_signed64(h) for h in hashes], dtype=np.int64)
    index = HashIndex(radius=0)
    index.add_many(signed, ["a", "b", "c"])
    assert [index.nearest(h) for h in hashes] == [("a", 0), ("b", 0), ("c", 0)]
    assert index.nearest_many(signed) == [("a", 0), ("b", 0), ("c", 0)]


def test_index_rejects_bad_input():
    index = HashIndex()
    with pytest.raises(ValueError):
        index.add(2**64, "too-big")
    with pytest.raises(ValueError):
        index.query(-1)
    with pytest.raises(ValueError):
        index.query_many([1, -1])
    with pytest.raises(ValueError):
        index.nearest_many([2**64])
    with pytest.raises(ValueError):
        index.add_many([1, 2], ["only-one-key"])
    with pytest.raises(ValueError):
        HashIndex(radius=65)


def test_exif_rotated_copy_hashes_like_the_upright_picture():
    upright = phash_of(imagefiles.jpeg_bytes(4))
    for orientation in (6, 8):
        rotated = phash_of(imagefiles.exif_rotated_jpeg(4, orientation=orientation))
        assert hamming(upright, rotated) <= 2


def test_hash_survives_a_round_trip_through_png():
    picture = imagefiles.photo(5)
    png = imagefiles.encode(picture, "PNG")
    with Image.open(io.BytesIO(png)) as decoded:
        assert phash64(decoded.convert("RGB")) == phash64(picture)
