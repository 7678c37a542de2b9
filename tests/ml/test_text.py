"""ml.text: reading captions out of meme-like images, and embedding text, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from ml.text import (
    TEXT_BACKBONE,
    TEXT_DIM,
    Line,
    TextEmbedder,
    lines_text,
    read_text,
    reading_order,
    text_embedder,
)
from tests import imagefiles

ROOT = Path(__file__).resolve().parents[2]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CAPTIONS = (
    ("WHEN THE MEETING", "COULD HAVE BEEN AN EMAIL"),
    ("NOBODY READS", "THE TERMS AND CONDITIONS"),
    ("keep your friends close", "and your snacks closer"),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def meme(seed: int, top: str, bottom: str, size: tuple[int, int] = (480, 400)) -> Image.Image:
    """A photo-like picture with white, black-outlined captions at the top and bottom."""
    picture = imagefiles.photo(seed, size)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.truetype(FONT, 30)
    for text, y in ((top, 12), (bottom, size[1] - 50)):
        x = (size[0] - draw.textlength(text, font=font)) / 2
        draw.text((x, y), text, font=font, fill="white", stroke_width=3, stroke_fill="black")
    return picture


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def recall(found: str, truth: str) -> float:
    want = Counter(words(truth))
    return sum((want & Counter(words(found))).values()) / sum(want.values())


@pytest.fixture(scope="module")
def memes() -> list[Image.Image]:
    return [meme(seed, top, bottom) for seed, (top, bottom) in enumerate(CAPTIONS)]


def test_read_text_finds_the_captions_in_reading_order(memes, tmp_path):
    """The recogniser sometimes drops the space between two outlined words ("friendsclose"),
    which costs both words; the pooled word recall stays above 0.8."""
    path = tmp_path / "first.jpg"
    memes[0].save(path, quality=90)
    inputs = [path, imagefiles.encode(memes[1], "PNG"), memes[2]]
    seen = []

    texts = read_text(inputs, progress=lambda done, total: seen.append((done, total)), threads=1)

    assert seen == [(1, 3), (2, 3), (3, 3)]
    truths = [f"{top} {bottom}" for top, bottom in CAPTIONS]
    found = sum(recall(text, truth) * len(words(truth)) for text, truth in zip(texts, truths, strict=True))
    assert found / sum(len(words(truth)) for truth in truths) >= 0.8, texts
    for text, (top, bottom) in zip(texts, CAPTIONS, strict=True):
        assert recall(text, f"{top} {bottom}") >= 0.6, text
        assert text == " ".join(text.split())
        first, last = words(top)[0], words(bottom)[-1]
        assert -1 < text.lower().find(first) < text.lower().rfind(last), text


def test_an_image_without_text_reads_as_empty():
    assert read_text([imagefiles.photo(7, (480, 400)), Image.new("RGB", (64, 64), "white")]) == ["", ""]


def test_an_undecodable_image_raises_naming_it(tmp_path, memes):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        read_text([memes[0], broken])
    with pytest.raises(ValueError, match="#1"):
        read_text([memes[0], imagefiles.truncated_jpeg()])


def test_reading_order_is_rows_top_to_bottom_then_left_to_right():
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    boxes = np.array(
        [box(300, 205, 400, 240), box(10, 10, 200, 50), box(10, 200, 120, 238), box(250, 14, 330, 48)],
        dtype=np.float32,
    )
    assert reading_order(boxes) == [1, 3, 2, 0]
    assert reading_order(np.zeros((0, 4, 2), dtype=np.float32)) == []


def test_lines_text_drops_low_scores_single_glyphs_and_extra_spaces():
    box = np.zeros((4, 2), dtype=np.float32)
    lines = [
        Line("  HELLO   there ", 0.99, box),
        Line("junk", 0.3, box),
        Line("A", 0.97, box),
        Line("--", 0.99, box),
        Line("friend 42", 0.9, box),
    ]
    assert lines_text(lines) == "HELLO there friend 42"
    assert lines_text(lines, min_score=0.0) == "HELLO there junk friend 42"
    assert lines_text([]) == ""


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    torch.set_num_threads(1)
    return TextEmbedder(device="cpu", batch_size=4)


def test_embedder_rows_are_unit_and_blank_texts_are_zero(embedder):
    texts = ["a cat sits on the mat", "", "   \n", "THE WEATHER IS COLD TODAY", "x" * 3000]
    vectors = embedder.embed(texts)

    assert vectors.shape == (5, TEXT_DIM) and vectors.dtype == np.float32
    assert embedder.dim == TEXT_DIM == 384 and TEXT_BACKBONE == "minilm-l6"
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 3, 4]], axis=1), 1.0, atol=1e-5)
    assert not vectors[[1, 2]].any()
    assert embedder.embed([]).shape == (0, TEXT_DIM)
    np.testing.assert_allclose(embedder.embed(["a cat sits on the mat"])[0], vectors[0], atol=1e-5)
    with pytest.raises(TypeError):
        embedder.embed(["fine", None])  # type: ignore[list-item]


def test_embedder_puts_paraphrases_closer_than_unrelated_sentences(embedder):
    pairs = [
        ("go back to your own country", "return to where you came from"),
        ("the cat is sleeping on the sofa", "a kitten naps on the couch"),
        ("stock prices fell sharply today", "the market dropped a lot this afternoon"),
    ]
    unrelated = ["a recipe for tomato soup", "the football match ended in a draw", "install the new printer driver"]
    a = embedder.embed([p for p, _ in pairs])
    b = embedder.embed([q for _, q in pairs])
    c = embedder.embed(unrelated)
    for i in range(len(pairs)):
        assert a[i] @ b[i] > max(a[i] @ c[j] for j in range(len(c))) + 0.2, pairs[i]


def test_text_embedder_is_one_instance_per_process():
    assert text_embedder() is text_embedder()
    assert text_embedder().dim == TEXT_DIM


def test_ml_text_imports_no_web_framework_and_no_torch():
    code = (
        "import sys, ml.text\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework', 'celery', 'torch', 'rapidocr', 'sentence_transformers')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


OFFLINE_SCRIPT = """
import json, os, socket, sys
from pathlib import Path

def refuse(*args, **kwargs):
    raise OSError("network use in an offline test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse

import rapidocr
import torch
from PIL import Image, ImageDraw, ImageFont

torch.set_num_threads(1)
from ml.text import TextEmbedder, read_text

models = Path(rapidocr.__file__).parent / "models"
before = sorted(p.name for p in models.iterdir())
picture = Image.new("RGB", (360, 120), "gray")
ImageDraw.Draw(picture).text((20, 35), "OFFLINE OK", font=ImageFont.truetype(sys.argv[1], 40),
                             fill="white", stroke_width=3, stroke_fill="black")
text = read_text([picture], threads=1)[0]
vector = TextEmbedder(device="cpu").embed([text])[0]
print(json.dumps({
    "text": text,
    "norm": float((vector ** 2).sum() ** 0.5),
    "models_unchanged": sorted(p.name for p in models.iterdir()) == before,
    "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    "transformers_offline": os.environ.get("TRANSFORMERS_OFFLINE"),
}))
"""


def test_models_load_from_the_wheels_without_network(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_HOME=str(tmp_path / "hf"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        TRANSFORMERS_OFFLINE="0",
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        OMP_NUM_THREADS="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, FONT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert words(report["text"]) == ["offline", "ok"]
    assert report["norm"] == pytest.approx(1.0, abs=1e-5)
    assert report["models_unchanged"]
    assert report["hf_hub_offline"] == "1"
    assert report["transformers_offline"] == "0"
    assert not (tmp_path / "hf").exists() and not (tmp_path / "cache" / "huggingface").exists()
