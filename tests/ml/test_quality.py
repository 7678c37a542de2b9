"""Quality checks and decoding, on real image files written by tests.imagefiles."""

from __future__ import annotations

import io
import resource
import time
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ml.hashing import hamming, phash64
from ml.quality import REASONS, QualityConfig, decode_image, quality_score
from tests import imagefiles

DEFAULT = QualityConfig()
LENIENT = QualityConfig(min_bytes=0, min_width=1, min_height=1)


def decode(data: bytes, config: QualityConfig = DEFAULT, max_side: int | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return decode_image(data, config=config, max_side=max_side)


@pytest.mark.parametrize(
    ("data", "config", "reason"),
    [
        (imagefiles.empty_file(), DEFAULT, "too_small"),
        (imagefiles.empty_file(), QualityConfig(min_bytes=0), "too_small"),
        (imagefiles.png_1x1(), DEFAULT, "too_small"),
        (imagefiles.png_1x1(), QualityConfig(min_bytes=0), "low_resolution"),
        (imagefiles.text_as_jpg(), DEFAULT, "unsupported"),
        (imagefiles.truncated_jpeg(), DEFAULT, "corrupt"),
        (imagefiles.huge_header_png(), DEFAULT, "too_many_pixels"),
        (imagefiles.solid_colour_jpeg(), DEFAULT, "blank"),
        (imagefiles.jpeg_bytes(1), QualityConfig(min_width=321), "low_resolution"),
        (imagefiles.jpeg_bytes(1), QualityConfig(min_height=241), "low_resolution"),
    ],
    ids=[
        "empty",
        "empty-no-minimum",
        "png-1x1",
        "png-1x1-no-minimum",
        "text-named-jpg",
        "truncated-jpeg",
        "huge-header",
        "solid-colour",
        "too-narrow",
        "too-low",
    ],
)
def test_each_reject_reason_from_real_bytes(data, config, reason):
    decoded, got, detail = decode(data, config)
    assert got == reason
    assert got in REASONS
    assert detail
    assert (decoded is not None) == (reason in ("low_resolution", "blank"))


def test_good_jpeg_is_accepted_as_rgb():
    decoded, reason, _ = decode(imagefiles.jpeg_bytes(3))
    assert reason is None
    assert (decoded.format, decoded.width, decoded.height) == ("JPEG", 320, 240)
    assert decoded.image.mode == "RGB" and decoded.image.size == (320, 240)
    assert decoded.grey.mode == "L" and decoded.grey.size == (320, 240)
    assert decoded.frames == 1 and not decoded.orientation_applied


def test_truncated_jpeg_is_corrupt_also_when_decoded_at_reduced_scale():
    decoded, reason, detail = decode(imagefiles.truncated_jpeg(), max_side=64)
    assert (decoded, reason) == (None, "corrupt")
    assert "truncated" in detail


def test_png_with_a_bad_checksum_is_corrupt():
    data = bytearray(imagefiles.encode(imagefiles.photo(4), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 100] ^= 0xFF
    assert decode(bytes(data))[1] == "corrupt"


@pytest.mark.parametrize("side", [30_000, 10_000])
def test_huge_header_is_too_many_pixels_without_allocating_or_warning(side):
    data = imagefiles.huge_header_png(side, side)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    decoded, reason, detail = decode(data, QualityConfig(max_pixels=10**12))
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000
    assert (decoded, reason) == (None, "too_many_pixels")
    assert f"{side}x{side}" in detail


def test_pixel_limit_is_decided_from_the_header():
    data = imagefiles.jpeg_bytes(5)
    assert decode(data, QualityConfig(max_pixels=320 * 240))[1] is None
    assert decode(data, QualityConfig(max_pixels=320 * 240 - 1))[1] == "too_many_pixels"


def test_format_outside_the_allowed_list_is_unsupported():
    png = imagefiles.encode(imagefiles.photo(6), "PNG")
    decoded, reason, detail = decode(png, QualityConfig(formats=("jpeg",)))
    assert (decoded, reason) == (None, "unsupported")
    assert "PNG" in detail


def test_checks_run_in_the_documented_order():
    tiny_text = b"not an image"
    assert decode(tiny_text)[1] == "too_small"
    assert decode(tiny_text, QualityConfig(min_bytes=0))[1] == "unsupported"
    small_blank = imagefiles.solid_colour_jpeg(size=(100, 100))
    assert decode(small_blank, QualityConfig(min_bytes=0))[1] == "low_resolution"


def test_cmyk_jpeg_is_converted_to_rgb_with_the_right_colours():
    decoded, reason, _ = decode(imagefiles.cmyk_jpeg(7))
    assert reason is None
    assert decoded.image.mode == "RGB" and decoded.source_mode == "CMYK"
    expected = np.asarray(imagefiles.photo(7), dtype=np.float64)
    assert np.abs(np.asarray(decoded.image, dtype=np.float64) - expected).mean() < 10


def test_16bit_png_is_scaled_to_8_bits():
    decoded, reason, _ = decode(imagefiles.png_16bit(8))
    assert reason is None
    assert decoded.source_mode.startswith("I")
    grey = np.asarray(decoded.grey, dtype=np.float64)
    expected = np.asarray(imagefiles.photo(8).convert("L"), dtype=np.float64)
    assert grey.mean() < 250
    assert np.abs(grey - expected).mean() < 1.0


def test_animated_gif_uses_its_first_frame():
    decoded, reason, _ = decode(imagefiles.animated_gif(seeds=(10, 11, 12)))
    assert reason is None
    assert decoded.frames == 3
    first, second = (phash64(imagefiles.photo(seed)) for seed in (10, 11))
    assert hamming(phash64(decoded.grey), first) <= 4
    assert hamming(phash64(decoded.grey), second) > 8


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(orientation):
    data = imagefiles.exif_rotated_jpeg(9, orientation=orientation)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (240, 320)
    decoded, reason, _ = decode(data)
    assert reason is None
    assert decoded.orientation_applied
    assert (decoded.width, decoded.height) == (320, 240)
    assert decoded.image.size == (320, 240)
    upright, _, _ = decode(imagefiles.jpeg_bytes(9))
    assert hamming(phash64(decoded.grey), phash64(upright.grey)) <= 2


def test_transparent_pixels_are_composed_over_white():
    clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    decoded, reason, _ = decode(imagefiles.encode(clear, "PNG"), LENIENT)
    assert reason == "blank"
    assert decoded.image.getpixel((10, 10)) == (255, 255, 255)


def test_reduced_decode_keeps_the_full_size_in_the_metadata():
    decoded, reason, _ = decode(imagefiles.jpeg_bytes(2, size=(1024, 768)), max_side=384)
    assert reason is None
    assert (decoded.width, decoded.height) == (1024, 768)
    assert decoded.image.size == (512, 384)


def test_config_round_trips_through_a_dict():
    config = QualityConfig(min_bytes=0, formats=("jpeg", "png"), blank_std=1.5)
    assert config.formats == ("JPEG", "PNG")
    assert QualityConfig.from_dict(config.to_dict()) == config
    assert QualityConfig.from_dict({}) == DEFAULT
    assert DEFAULT.to_dict()["formats"] == list(DEFAULT.formats)


def test_config_rejects_unknown_keys_and_negative_values():
    with pytest.raises(ValueError, match="min_pixels"):
        QualityConfig.from_dict({"min_pixels": 3})
    with pytest.raises(ValueError, match="min_width"):
        QualityConfig(min_width=-1)


def test_quality_score_prefers_the_sharp_picture():
    sharp = imagefiles.photo(11, size=(640, 480))
    soft = sharp.filter(ImageFilter.GaussianBlur(3))
    scores = [quality_score(image) for image in (sharp, soft)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > scores[1] + 0.1
    assert quality_score(sharp) == scores[0]


def test_quality_score_counts_resolution_on_the_original_size():
    picture = imagefiles.photo(12)
    small = quality_score(picture)
    assert quality_score(picture, original_size=(3200, 2400)) > small
    assert quality_score(Image.new("L", (2, 2))) == 0.0
