"""The backbone registry: packaged EfficientNet-Lite0 offline, ViT files, one embedding loop."""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from ml import backbones
from ml.backbones import (
    BACKBONES,
    DEFAULT_BACKBONE,
    ImageDataset,
    Preprocess,
    default_num_workers,
    embed,
    load_image_backbone,
)
from ml.embed import backbone_features, embed_images, eval_transform, load_backbone_file
from tests import imagefiles as f

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lite0():
    return load_image_backbone("efficientnet-lite0")


@pytest.fixture
def vit_file(tmp_path):
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=96).eval()
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    return path


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def nearest_centroid_accuracy(train: np.ndarray, test: np.ndarray, n_per_class: int) -> float:
    """Two classes, rows ordered [class 0 x n, class 1 x n] in both sets."""
    y = np.repeat([0, 1], n_per_class)
    centroids = np.stack([train[y == c].mean(axis=0) for c in (0, 1)])
    distances = ((test[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    return float((distances.argmin(axis=1) == y).mean())


def test_lite0_loads_offline_quietly_as_relu6(monkeypatch, capsys) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("loading a backbone touched the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    backbones._lite0_network.cache_clear()

    first = load_image_backbone(DEFAULT_BACKBONE)
    second = load_image_backbone(DEFAULT_BACKBONE)

    assert capsys.readouterr().out == ""
    assert DEFAULT_BACKBONE == "efficientnet-lite0" and set(BACKBONES) == {
        "efficientnet-lite0",
        "vit",
    }
    assert (first.name, first.dim) == ("efficientnet-lite0", 1280)
    assert first.preprocess == Preprocess(resize=256, crop=224, mean=(0.498,) * 3, std=(0.502,) * 3)
    assert not first.module.training
    activations = {type(m).__name__ for m in first.module.modules()}
    assert "ReLU6" in activations and not activations & {"Swish", "MemoryEfficientSwish"}
    first_weight = next(first.module.parameters())
    second_weight = next(second.module.parameters())
    assert torch.equal(first_weight, second_weight)
    assert first_weight.data_ptr() != second_weight.data_ptr()


def test_lite0_gives_unit_rows_that_separate_two_kinds_of_picture(lite0) -> None:
    n = 6
    pictures = {
        split: [
            f.pattern_photo(pattern, seed, size=(240 + 16 * (seed % 3), 200))
            for pattern in ("stripes", "discs")
            for seed in range(offset, offset + n)
        ]
        for split, offset in (("train", 0), ("test", 100))
    }
    seen: list[tuple[int, int]] = []

    train = embed(lite0, pictures["train"], batch_size=8, progress=lambda *a: seen.append(a))
    test = embed(lite0, pictures["test"], batch_size=8)
    again = embed(lite0, [png(pictures["train"][0]), pictures["train"][0]], batch_size=1)

    assert train.dtype == np.float32 and train.shape == (2 * n, 1280)
    assert np.allclose(np.linalg.norm(train, axis=1), 1.0, atol=1e-5)
    assert seen == [(8, 12), (12, 12)]
    assert np.allclose(again, train[0], atol=1e-5)
    pixels = {
        split: np.stack([np.asarray(p.resize((16, 16)), dtype=np.float32).ravel() for p in ps])
        for split, ps in pictures.items()
    }
    baseline = nearest_centroid_accuracy(pixels["train"], pixels["test"], n)
    accuracy = nearest_centroid_accuracy(train, test, n)
    assert accuracy >= 0.9 and accuracy > baseline


def test_vit_file_through_the_registry_matches_embed_images(vit_file) -> None:
    images = [f.photo(seed, size=(40 + 7 * seed, 36)) for seed in range(5)]

    backbone = load_image_backbone("vit", path=vit_file, num_heads=4)
    rows = embed(backbone, images, batch_size=2)

    assert (backbone.name, backbone.dim, backbone.source) == ("vit", 64, str(vit_file))
    assert backbone.preprocess == Preprocess(resize=32, crop=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    vit = load_backbone_file(vit_file, num_heads=4)
    assert np.array_equal(rows, embed_images(vit, images, image_size=32, batch_size=2))
    batch = torch.stack([eval_transform(32)(image) for image in images])
    with torch.no_grad():
        expected = nn.functional.normalize(backbone_features(vit, batch), dim=1).numpy()
    assert np.allclose(rows, expected, atol=1e-6)

    mean_pooled = load_image_backbone("vit", path=vit_file, num_heads=4, pooling="mean")
    assert np.allclose(
        embed(mean_pooled, images),
        embed_images(vit, images, image_size=32, pooling="mean"),
        atol=1e-6,
    )


def test_preprocess_is_eval_transform_bit_for_bit() -> None:
    preprocess = Preprocess(resize=48, crop=48, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    for size in [(97, 61), (48, 48), (50, 200)]:
        image = f.photo(3, size=size)
        assert torch.equal(preprocess(image), eval_transform(48)(image))
    lite = backbones.lite0_preprocess()
    assert lite.pixels(f.photo(1, size=(300, 260))).shape == (3, 224, 224)
    with pytest.raises(ValueError, match="crop <= resize"):
        Preprocess(resize=200, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_is_named(tmp_path, vit_file, workers: int) -> None:
    backbone = load_image_backbone("vit", path=vit_file, num_heads=4)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(f.truncated_jpeg())
    good = tmp_path / "good.jpg"
    good.write_bytes(f.jpeg_bytes(1))

    with pytest.raises(ValueError, match=r"^cannot read image .*broken\.jpg: "):
        embed(backbone, [good, broken], num_workers=workers)
    with pytest.raises(ValueError, match=r"^cannot read image #1: "):
        embed(backbone, [good, f.text_as_jpg()], num_workers=workers)


def test_bad_names_and_arguments_raise(vit_file) -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'"):
        load_image_backbone("resnet50")
    with pytest.raises(ValueError, match="needs path"):
        load_image_backbone("vit")
    with pytest.raises(ValueError, match="packaged weights"):
        load_image_backbone("efficientnet-lite0", path=vit_file)
    with pytest.raises(ValueError, match="pooling"):
        load_image_backbone("vit", path=vit_file, num_heads=4, pooling="max")
    backbone = load_image_backbone("vit", path=vit_file, num_heads=4)
    assert embed(backbone, []).shape == (0, 64)


def test_default_workers_decode_beside_the_forward_pass() -> None:
    assert default_num_workers(10, cpu_count=2) == 0
    assert default_num_workers(1000, cpu_count=1) == 0
    assert default_num_workers(1000, cpu_count=2) == 1
    assert default_num_workers(1000, cpu_count=16) == 4
    dataset = ImageDataset([f.png_1x1()], backbones.lite0_preprocess())
    assert dataset[0].shape == (3, 224, 224)
