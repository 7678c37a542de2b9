"""analyse(): one call per file, real files in, metadata and derivatives out."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from ml.derivatives import blurred, encode_jpeg, thumbnail
from ml.hashing import hamming, phash64
from ml.ingest import Analysis, analyse
from ml.quality import QualityConfig, quality_score
from tests import imagefiles

CONFIG = QualityConfig()


def open_jpeg(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        return image.convert("RGB")


@pytest.fixture(scope="module")
def large() -> tuple[bytes, Analysis]:
    data = imagefiles.jpeg_bytes(21, size=(1024, 768))
    return data, analyse(data, name="large.jpg", config=CONFIG)


def test_accepted_file_gets_metadata_hashes_and_derivatives(large):
    data, result = large
    assert result.reason is None
    assert (result.name, result.size_bytes) == ("large.jpg", len(data))
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.format, result.width, result.height) == ("JPEG", 1024, 768)
    assert 0.0 <= result.quality_score <= 1.0
    assert 0 <= result.phash < 2**64
    assert open_jpeg(result.thumbnail_jpeg).size == (384, 288)
    assert open_jpeg(result.blurred_jpeg).size == (48, 36)


def test_reduced_decode_hashes_like_the_full_picture(large):
    _, result = large
    full = imagefiles.photo(21, size=(1024, 768))
    assert hamming(result.phash, phash64(full)) <= 4


def test_thumb_side_and_blur_radius_are_honoured():
    result = analyse(
        imagefiles.jpeg_bytes(22, size=(800, 600)),
        name="a.jpg",
        config=CONFIG,
        thumb_side=200,
        blur_radius=6,
    )
    assert open_jpeg(result.thumbnail_jpeg).size == (200, 150)
    assert open_jpeg(result.blurred_jpeg).size == (100, 75)


def test_small_upright_jpeg_is_its_own_thumbnail():
    data = imagefiles.jpeg_bytes(23)
    result = analyse(data, name="a.jpg", config=CONFIG)
    assert result.thumbnail_is_original and result.thumbnail_jpeg == data
    rotated = imagefiles.exif_rotated_jpeg(23)
    result = analyse(rotated, name="r.jpg", config=CONFIG)
    assert not result.thumbnail_is_original
    assert result.thumbnail_jpeg != rotated and open_jpeg(result.thumbnail_jpeg).size == (320, 240)
    png = imagefiles.encode(imagefiles.photo(23), "PNG")
    result = analyse(png, name="p.png", config=CONFIG)
    assert not result.thumbnail_is_original and open_jpeg(result.thumbnail_jpeg).size == (320, 240)


def test_exif_rotated_file_reports_upright_size_and_hash():
    upright = analyse(imagefiles.jpeg_bytes(24), name="u.jpg", config=CONFIG)
    rotated = analyse(imagefiles.exif_rotated_jpeg(24, 8), name="r.jpg", config=CONFIG)
    assert (rotated.width, rotated.height) == (upright.width, upright.height) == (320, 240)
    assert hamming(rotated.phash, upright.phash) <= 2


@pytest.mark.parametrize(
    ("data", "reason", "decoded"),
    [
        (imagefiles.text_as_jpg(), "unsupported", False),
        (imagefiles.truncated_jpeg(), "corrupt", False),
        (imagefiles.huge_header_png(), "too_many_pixels", False),
        (imagefiles.solid_colour_jpeg(), "blank", True),
    ],
    ids=["unsupported", "corrupt", "too-large", "blank"],
)
def test_rejected_file_is_a_record_without_derivatives(data, reason, decoded):
    result = analyse(data, name="bad.jpg", config=CONFIG)
    assert result.reason == reason and result.detail
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size_bytes == len(data)
    assert (result.format is not None) == decoded
    assert result.phash is result.quality_score is None
    assert result.thumbnail_jpeg is result.blurred_jpeg is None


def test_low_resolution_file_keeps_its_size():
    data = imagefiles.jpeg_bytes(25, size=(200, 150))
    result = analyse(data, name="small.jpg", config=QualityConfig(min_bytes=0))
    assert (result.reason, result.width, result.height) == ("low_resolution", 200, 150)


def test_analyse_is_deterministic_and_thread_safe():
    files = [imagefiles.jpeg_bytes(seed) for seed in range(30, 36)]
    files += [imagefiles.png_16bit(36), imagefiles.animated_gif(), imagefiles.cmyk_jpeg(37)]
    sequential = [analyse(d, name=str(i), config=CONFIG) for i, d in enumerate(files)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda item: analyse(item[1], name=str(item[0]), config=CONFIG), enumerate(files)))
    assert threaded == sequential
    assert all(result.reason is None for result in sequential)


def test_thumbnail_fits_the_box_and_keeps_small_pictures():
    picture = imagefiles.photo(26, size=(1000, 250))
    assert thumbnail(picture, max_side=384).size == (384, 96)
    small = imagefiles.photo(26, size=(300, 200))
    assert thumbnail(small, max_side=384) is small


def test_blurred_preview_leaves_no_detail():
    thumb = imagefiles.photo(27, size=(384, 288))
    preview = blurred(thumb)
    assert preview.size == (48, 36)
    shown = preview.resize(thumb.size, Image.Resampling.BILINEAR)
    error = np.asarray(shown, dtype=np.float64) - np.asarray(thumb, dtype=np.float64)
    assert np.sqrt((error**2).mean()) > 20
    assert quality_score(shown) < quality_score(thumb) - 0.3


def test_encode_jpeg_writes_a_plain_jpeg():
    picture = imagefiles.photo(28)
    data = encode_jpeg(picture, quality=70)
    assert open_jpeg(data).size == picture.size
    assert len(encode_jpeg(picture, quality=95)) > len(data)


def test_ml_imports_no_web_framework():
    code = (
        "import sys, ml.ingest, ml.hashing, ml.quality, ml.derivatives\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'celery')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
