"""One decoding to RGB: transparency on white, 16-bit scaled, and every consumer agreeing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.backbones import ImageDataset
from ml.images import open_rgb, to_rgb
from ml.msn import MSNConfig, MultiViewDataset
from ml.quality import QualityConfig, decode_image
from tests import imagefiles

SIZE = (64, 48)


def rgba_png(path: Path) -> Path:
    """A red square on a fully transparent background, half of it half-transparent."""
    pixels = np.zeros((SIZE[1], SIZE[0], 4), dtype=np.uint8)
    pixels[8:40, 8:32] = (200, 0, 0, 255)
    pixels[8:40, 32:56] = (0, 0, 200, 128)
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def png_16bit(path: Path) -> Path:
    """A 16-bit grey ramp from 0 to 65535 across the width."""
    ramp = np.linspace(0, 65535, SIZE[0]).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (SIZE[1], 1))).save(path)
    return path


def palette_png(path: Path) -> Path:
    """A palette PNG whose index 0 is transparent."""
    image = Image.new("P", SIZE, 0)
    image.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    image.paste(1, (16, 16, 48, 32))
    image.save(path, transparency=0)
    return path


def grey_alpha_png(path: Path) -> Path:
    pixels = np.zeros((SIZE[1], SIZE[0], 2), dtype=np.uint8)
    pixels[..., 0] = 40
    pixels[:, : SIZE[0] // 2, 1] = 255
    Image.fromarray(pixels, "LA").save(path)
    return path


def cmyk_jpeg(path: Path) -> Path:
    path.write_bytes(imagefiles.cmyk_jpeg(3, SIZE))
    return path


FILES = {"rgba": rgba_png, "16bit": png_16bit, "palette": palette_png, "la": grey_alpha_png, "cmyk": cmyk_jpeg}


@pytest.fixture(params=sorted(FILES))
def image_file(request, tmp_path) -> Path:
    return FILES[request.param](tmp_path / f"{request.param}.{'jpg' if request.param == 'cmyk' else 'png'}")


def test_transparent_pixels_come_out_white(tmp_path):
    rgb = np.asarray(open_rgb(rgba_png(tmp_path / "a.png"), label="a"))
    assert rgb.shape == (SIZE[1], SIZE[0], 3)
    assert (rgb[0, 0] == 255).all() and (rgb[47, 63] == 255).all()
    assert tuple(rgb[20, 20]) == (200, 0, 0)
    assert tuple(rgb[20, 40]) == pytest.approx((127, 127, 227), abs=1)


def test_palette_and_grey_with_transparency_come_out_white(tmp_path):
    palette = np.asarray(open_rgb(palette_png(tmp_path / "p.png"), label="p"))
    assert tuple(palette[0, 0]) == (255, 255, 255)
    assert tuple(palette[20, 20]) == (0, 128, 0)
    grey = np.asarray(open_rgb(grey_alpha_png(tmp_path / "la.png"), label="la"))
    assert tuple(grey[0, 0]) == (40, 40, 40)
    assert tuple(grey[0, SIZE[0] - 1]) == (255, 255, 255)


def test_16bit_levels_are_scaled_not_clipped(tmp_path):
    path = png_16bit(tmp_path / "g.png")
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(open_rgb(path, label="g")).astype(int)
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, -1].tolist() == [255, 255, 255]
    middle = rgb[0, :, 0]
    assert (np.diff(middle) >= 0).all()
    assert len(np.unique(middle)) > SIZE[0] // 2  # a ramp, not 0 then 255 everywhere
    assert abs(int(middle[SIZE[0] // 2]) - 128) <= 3


def test_rgb_images_pass_through_untouched():
    image = imagefiles.photo(1, SIZE)
    assert to_rgb(image) is image


def test_import_and_model_paths_decode_the_same_pixels(image_file):
    """The import (thumbnails moderators see), the embedding dataset and MSN's dataset
    all start from the same RGB array for a file."""
    decoded, reason, _ = decode_image(
        image_file.read_bytes(), config=QualityConfig(min_width=1, min_height=1, min_bytes=1, blank_std=0)
    )
    assert decoded is not None, reason
    imported = np.asarray(decoded.image)

    class Capture:
        resize = 10_000

        def __call__(self, image: Image.Image) -> np.ndarray:
            return np.asarray(image)

    embedded = ImageDataset([image_file], Capture())[0]  # type: ignore[arg-type]
    pretraining = MultiViewDataset([image_file], MSNConfig.preset("tiny"))
    pretraining.transform = Capture()
    msn_pixels = pretraining[0, 0]

    assert imported.dtype == embedded.dtype == msn_pixels.dtype == np.uint8
    np.testing.assert_array_equal(embedded, imported)
    np.testing.assert_array_equal(msn_pixels, imported)
