"""The exported classifier computes what Veil computes, in a process without Veil."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torchvision.models.vision_transformer import VisionTransformer

from ml.backbones import ImageDataset, embed, load_image_backbone
from ml.export import (
    CARD_FILENAME,
    classifier_module,
    export_classifier,
    export_input,
    head_module,
)
from ml.features import fuse
from ml.head import ISOTONIC_MIN_SAMPLES, LinearHead
from tests import imagefiles as f

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def blobs(n: int, k: int, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian classes named "c0".."c{k-1}", float32 (n, d)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = rng.normal(size=(k, d))[y] + rng.normal(scale=1.5, size=(n, d))
    return X.astype(np.float32), np.array([f"c{i}" for i in y])


def vit_file(path, image_size: int, seed: int):
    torch.manual_seed(seed)
    vit = VisionTransformer(image_size=image_size, patch_size=8, num_layers=1, num_heads=4, hidden_dim=32, mlp_dim=48)
    torch.save(vit.state_dict(), path)
    return load_image_backbone("vit", path=path, num_heads=4)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize(
    ("calibration", "n", "calibrate"),
    [("none", 40, False), ("sigmoid", 60, True), ("isotonic", ISOTONIC_MIN_SAMPLES, True)],
)
def test_head_module_is_predict_proba(calibration: str, n: int, calibrate: bool, k: int) -> None:
    X, y = blobs(n, k)
    head = LinearHead(C=1.0, calibrate=calibrate).fit(X, y)
    assert head.calibration_ == calibration
    X_new, _ = blobs(300, k, seed=1)
    X_new = np.vstack([X_new, 25 * X_new[:20], np.zeros((1, X.shape[1]), np.float32), X[:5]])

    with torch.no_grad():
        proba = head_module(head)(torch.from_numpy(X_new))

    assert proba.dtype == torch.float32 and proba.shape == (len(X_new), k)
    assert np.allclose(proba.numpy(), head.predict_proba(X_new), atol=1e-5, rtol=0)


CONSUMER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    model_path, inputs_path, out_path, *image_paths = sys.argv[1:]
    extra = {"veil_card.json": ""}
    model = torch.export.load(model_path, extra_files=extra).module()
    card = json.loads(extra["veil_card.json"])
    size, resize = card["input"]["crop"], card["input"]["resize"]

    def prepare(path):
        image = Image.open(path).convert("RGB")
        w, h = image.size
        short, long = min(w, h), max(w, h)
        new_long = int(resize * long / short)
        image = image.resize((resize, new_long) if w <= h else (new_long, resize), Image.BILINEAR)
        w, h = image.size
        top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
        return np.asarray(image.crop((left, top, left + size, top + size))).transpose(2, 0, 1)

    ours = np.stack([prepare(p) for p in image_paths])
    veil = np.load(inputs_path)
    with torch.no_grad():
        proba = model(torch.from_numpy(ours)).numpy()
    np.save(out_path, proba)
    print(json.dumps({
        "same_pixels": bool(np.array_equal(ours, veil)),
        "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"ml", "django", "sklearn", "tests"}),
        "classes": card["classes"],
    }))
    """
)


def test_lite0_classifier_runs_in_a_process_without_veil(tmp_path) -> None:
    backbone = load_image_backbone("efficientnet-lite0")
    kinds = ("stripes", "discs", "stripes", "discs")
    images = [f.pattern_photo(kinds[seed % 4], seed, size=(260 + 24 * (seed % 3), 230)) for seed in range(9)]
    y = np.array([kinds[seed % 4] for seed in range(9)])
    head = LinearHead(C=1.0, calibrate=False).fit(fuse([embed(backbone, images)]), y)
    paths = []
    for i, image in enumerate(images[:5]):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    expected = head.predict_proba(fuse([embed(backbone, paths)]))
    np.save(tmp_path / "inputs.npy", np.stack([export_input(p, backbone.preprocess) for p in paths]))

    card = export_classifier(tmp_path / "model.pt2", [backbone], head, card={"name": "smoke"})
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            CONSUMER,
            str(tmp_path / "model.pt2"),
            str(tmp_path / "inputs.npy"),
            str(tmp_path / "proba.npy"),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )

    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"same_pixels": True, "loaded": [], "classes": ["discs", "stripes"]}
    assert np.allclose(np.load(tmp_path / "proba.npy"), expected, atol=1e-4, rtol=0)
    assert card["name"] == "smoke" and card["outputs"] == "probabilities"
    assert card["classes"] == ["discs", "stripes"] and card["text"] is None
    assert {k: card["input"][k] for k in ("dtype", "shape", "resize", "crop", "colour")} == {
        "dtype": "uint8",
        "shape": [None, 3, 224, 224],
        "resize": 256,
        "crop": 224,
        "colour": "RGB",
    }
    assert json.loads(json.dumps(card)) == card


def test_vit_and_text_classifier_matches_veil(tmp_path) -> None:
    backbone = vit_file(tmp_path / "vit.pth", 32, seed=0)
    images = [f.photo(seed, size=(48 + 5 * seed, 40)) for seed in range(12)]
    rng = np.random.default_rng(0)
    text = rng.normal(size=(12, 10)).astype(np.float32)
    text[::4] = 0.0
    X = fuse([embed(backbone, images), text])
    head = LinearHead(C=1.0).fit(X, np.array(["a", "b", "c"] * 4))

    card = export_classifier(tmp_path / "m.pt2", [backbone], head, card={}, text_dim=10)
    extra = {CARD_FILENAME: ""}
    model = torch.export.load(tmp_path / "m.pt2", extra_files=extra).module()
    pixels = torch.stack([export_input(image, backbone.preprocess) for image in images])
    with torch.no_grad():
        proba = model(pixels, torch.from_numpy(text)).numpy()
        single = model(pixels[:1], torch.from_numpy(text[:1])).numpy()

    assert np.allclose(proba, head.predict_proba(X), atol=1e-5, rtol=0)
    assert np.allclose(single, proba[:1], atol=1e-6)
    assert json.loads(extra[CARD_FILENAME]) == card
    assert card["text"] == {"dtype": "float32", "shape": [None, 10]}
    assert card["calibration"] == head.calibration_


def test_second_backbone_sees_the_first_ones_crop_resized(tmp_path) -> None:
    first = vit_file(tmp_path / "a.pth", 32, seed=1)
    second = vit_file(tmp_path / "b.pth", 16, seed=2)
    images = [f.photo(seed, size=(40, 40 + 6 * seed)) for seed in range(6)]
    X = fuse([embed(first, images), embed(second, images)])
    head = LinearHead(C=1.0, calibrate=False).fit(X, np.array(["x", "y"] * 3))

    export_classifier(tmp_path / "two.pt2", [first, second], head, card={})
    model = torch.export.load(tmp_path / "two.pt2").module()
    pixels = torch.stack([export_input(image, first.preprocess) for image in images])
    with torch.no_grad():
        exported = model(pixels).numpy()
        eager = classifier_module([first, second], head)(pixels).numpy()

    assert np.allclose(exported, eager, atol=1e-6)
    assert np.allclose(exported, head.predict_proba(X), atol=0.1)


def test_export_input_decodes_as_embed_does(tmp_path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(f.jpeg_bytes(4, size=(1200, 900)))
    backbone = load_image_backbone("efficientnet-lite0")

    pixels = export_input(path, backbone.preprocess)

    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 224, 224)
    assert torch.equal(backbone.preprocess.normalise(pixels), ImageDataset([path], backbone.preprocess)[0])


def test_mismatched_parts_and_cards_are_refused(tmp_path) -> None:
    backbone = vit_file(tmp_path / "vit.pth", 32, seed=0)
    X, y = blobs(20, 2, d=40)
    head = LinearHead(C=1.0, calibrate=False).fit(X, y)

    with pytest.raises(ValueError, match="head takes 40 features but the parts give 32"):
        classifier_module([backbone], head)
    with pytest.raises(ValueError, match="at least one backbone"):
        classifier_module([], head)
    with pytest.raises(ValueError, match="card is not JSON-compatible"):
        export_classifier(tmp_path / "x.pt2", [backbone], head, card={"when": object()}, text_dim=8)
    assert not (tmp_path / "x.pt2").exists()
