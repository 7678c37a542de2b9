"""Hashes and the near-duplicate index."""

from __future__ import annotations

import hashlib
import io
import itertools
import random

import imagehash
import numpy as np
import pytest
from PIL import Image

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


def brute_force(stored: list[int], query: int, radius: int) -> list[tuple[int, int]]:
    hits = [(key, hamming(h, query)) for key, h in enumerate(stored)]
    return sorted(((k, d) for k, d in hits if d <= radius), key=lambda hit: (hit[1], hit[0]))


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_index_matches_brute_force(radius):
    rng = random.Random(radius)
    stored = random_hashes(rng, 3000)
    planted = []
    for source in rng.sample(stored, 100):
        planted += [flip_bits(rng, source, radius), flip_bits(rng, source, radius + 1)]
    stored += planted[: len(planted) // 2]
    queries = planted[len(planted) // 2 :] + random_hashes(rng, 50) + rng.sample(stored, 50)

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

    for query in queries:
        expected = brute_force(stored, query, radius)
        for index in (bulk, incremental, mixed):
            assert index.query(query) == expected
            assert index.nearest(query) == (expected[0] if expected else None)
    assert any(brute_force(stored, q, radius) for q in queries)
    assert len(bulk) == len(incremental) == len(mixed) == len(stored)


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


def test_add_many_reads_int64_arrays_as_stored_bigints():
    hashes = [2**64 - 1, 2**63, 5]
    signed = np.array([to_signed64(h) for h in hashes], dtype=np.int64)
    index = HashIndex(radius=0)
    index.add_many(signed, ["a", "b", "c"])
    assert [index.nearest(h) for h in hashes] == [("a", 0), ("b", 0), ("c", 0)]


def test_index_rejects_bad_input():
    index = HashIndex()
    with pytest.raises(ValueError):
        index.add(2**64, "too-big")
    with pytest.raises(ValueError):
        index.query(-1)
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
