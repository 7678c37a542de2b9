"""The trained classifier as one self-contained file: pixels in, probabilities out.

:func:`export_classifier` writes backbones, feature fusion and the calibrated head as
one ``torch.export`` program (a ``.pt2`` archive). A consumer needs torch only::

    model = torch.export.load(path).module()
    probabilities = model(images)            # uint8 (B, 3, S, S) -> float32 (B, k)
    probabilities = model(images, text)      # when exported with a text part

``images`` are what :func:`export_input` produces: RGB, shorter side resized to the
card's ``resize`` (bilinear, antialiased, PIL), centre crop ``S`` x ``S``, channels first.
The program then reproduces Veil's own computation,
``head.predict_proba(fuse([embed(b, images) for b in backbones] + [text]))``.

``torch.export`` rather than TorchScript: torch 2.14 deprecates ``torch.jit.trace``,
``torch.jit.script`` and ``torch.jit.save`` (each warns with a FutureWarning), while an
exported program loads with ``torch.export.load`` in a process that has nothing but
torch installed. The card travels inside the archive as ``veil_card.json``
(``torch.export.load(path, extra_files={"veil_card.json": ""})``). Name the file
``*.pt2``: ``torch.export.load`` logs a warning for a path with another suffix (and
still loads it).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from ml.backbones import ImageBackbone, Preprocess
from ml.head import LinearHead
from ml.images import ImageInput, describe_item, open_rgb

EXPORT_FORMAT = "veil.classifier.export"
CARD_FILENAME = "veil_card.json"
"""Name of the card inside the archive (``extra_files`` of ``torch.export``)."""

_NORM_EPS = 1e-12


def _float64(array: Any) -> Tensor:
    """A contiguous float64 copy: scikit-learn's arrays may be strided views (intercept_
    is a column of the solver's weights), which the archive writer cannot store alone."""
    return torch.tensor(np.ascontiguousarray(array, dtype=np.float64))


class SigmoidCalibrator(nn.Module):
    """Platt scaling as scikit-learn's ``_SigmoidCalibration``: (B,) -> (B,) float64."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a = float(a)
        self.b = float(b)

    def forward(self, scores: Tensor) -> Tensor:
        return torch.sigmoid(-(self.a * scores + self.b))


class IsotonicCalibrator(nn.Module):
    """scikit-learn's ``IsotonicRegression(out_of_bounds="clip").predict``: (B,) -> (B,).

    Scores are clipped to ``[X_min_, X_max_]`` and interpolated linearly between the
    thresholds ``X_thresholds_`` -> ``y_thresholds_`` (float64).
    """

    def __init__(self, regression: IsotonicRegression) -> None:
        super().__init__()
        self.register_buffer("x", _float64(regression.X_thresholds_))
        self.register_buffer("y", _float64(regression.y_thresholds_))
        self.x_min = float(regression.X_min_)
        self.x_max = float(regression.X_max_)
        self.constant = self.x.numel() == 1

    def forward(self, scores: Tensor) -> Tensor:
        scores = scores.clamp(self.x_min, self.x_max)
        if self.constant:
            return self.y.expand(scores.shape[0])
        last = self.x.shape[0] - 1
        upper = torch.searchsorted(self.x, scores.contiguous()).clamp(1, last)
        x_lo, x_hi = self.x[upper - 1], self.x[upper]
        y_lo, y_hi = self.y[upper - 1], self.y[upper]
        return y_lo + (y_hi - y_lo) / (x_hi - x_lo) * (scores - x_lo)


class HeadModule(nn.Module):
    """A fitted :class:`~ml.head.LinearHead` in torch: (B, D) float32 -> (B, k) float32.

    Computes in float64, as scikit-learn does: centre by ``mean_``, L2-normalise, the
    logistic regression's decision function, then either its own probabilities
    (binary: sigmoid; multiclass: softmax) or the per-class calibrators of
    ``CalibratedClassifierCV(ensemble=False)`` followed by scikit-learn's normalisation
    (binary: ``p0 = 1 - p1``; multiclass: divide by the row sum, uniform where it is 0;
    values in (1, 1 + 1e-5] set to 1).
    """

    def __init__(self, head: LinearHead) -> None:
        super().__init__()
        check_is_fitted(head)
        estimator = head.estimator_
        calibrators: list[nn.Module] = []
        if head.calibration_ != "none":
            fitted = head.calibrator_.calibrated_classifiers_
            if len(fitted) != 1:
                raise ValueError(
                    f"head calibrator holds {len(fitted)} calibrated classifiers; "
                    "export supports ensemble=False (exactly one)"
                )
            estimator = fitted[0].estimator
            for calibrator in fitted[0].calibrators:
                if isinstance(calibrator, IsotonicRegression):
                    calibrators.append(IsotonicCalibrator(calibrator))
                elif hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):
                    calibrators.append(SigmoidCalibrator(calibrator.a_, calibrator.b_))
                else:
                    raise ValueError(f"cannot export calibrator {type(calibrator).__name__}")
        self.register_buffer("mean", _float64(head.mean_))
        self.register_buffer("coef", _float64(estimator.coef_))
        self.register_buffer("intercept", _float64(estimator.intercept_))
        self.calibrators = nn.ModuleList(calibrators)
        self.calibrated = bool(calibrators)
        self.n_classes = int(head.classes_.size)
        self.in_features = int(head.n_features_in_)

    def forward(self, features: Tensor) -> Tensor:
        x = features.to(torch.float64) - self.mean
        z = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(_NORM_EPS)
        scores = z @ self.coef.T + self.intercept
        binary = self.n_classes == 2
        if not self.calibrated:
            if binary:
                positive = torch.sigmoid(scores[:, 0])
                return torch.stack([1.0 - positive, positive], dim=1).to(torch.float32)
            return torch.softmax(scores, dim=1).to(torch.float32)
        columns = [calibrator(scores[:, i]) for i, calibrator in enumerate(self.calibrators)]
        if binary:
            proba = torch.stack([1.0 - columns[0], columns[0]], dim=1)
        else:
            proba = torch.stack(columns, dim=1)
            total = proba.sum(dim=1, keepdim=True)
            uniform = torch.full_like(proba, 1.0 / self.n_classes)
            proba = torch.where(total != 0, proba / total, uniform)
        proba = torch.where((proba > 1.0) & (proba <= 1.0 + 1e-5), torch.ones_like(proba), proba)
        return proba.to(torch.float32)


def head_module(head: LinearHead) -> nn.Module:
    """The head as a module: (B, D) float32 head inputs -> (B, k) float32 probabilities.

    Equal to ``head.predict_proba`` (to float32 rounding) for every ``calibration_``
    (``"none"``, ``"sigmoid"``, ``"isotonic"``), binary or multiclass; columns in the
    order of ``head.classes_``.
    """
    return HeadModule(head).eval()


class ImagePart(nn.Module):
    """One backbone on the shared input: uint8 (B, 3, S, S) -> features (B, dim).

    Scales to [0, 1], resizes to the backbone's crop (bilinear, antialiased) when it
    differs from ``S``, normalises with its mean and std and runs its module.
    """

    def __init__(self, backbone: ImageBackbone, size: int) -> None:
        super().__init__()
        preprocess = backbone.preprocess
        self.module = copy.deepcopy(backbone.module).cpu().float().eval()
        self.crop = preprocess.crop
        self.resize = preprocess.crop != size
        self.register_buffer("mean", torch.tensor(preprocess.mean, dtype=torch.float32).view(3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocess.std, dtype=torch.float32).view(3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32).div(255)
        if self.resize:
            x = F.interpolate(x, size=(self.crop, self.crop), mode="bilinear", align_corners=False, antialias=True)
        return self.module((x - self.mean) / self.std)


def fuse_features(parts: list[Tensor]) -> Tensor:
    """:func:`ml.features.fuse` in torch: (B, d_i) parts -> (B, sum d_i) float32."""
    weight = 1.0 / math.sqrt(len(parts))
    normalised = [p / torch.linalg.vector_norm(p, dim=1, keepdim=True).clamp_min(_NORM_EPS) * weight for p in parts]
    return torch.cat(normalised, dim=1)


class ImageClassifier(nn.Module):
    """uint8 images (B, 3, S, S) -> (B, k) probabilities."""

    def __init__(self, parts: Sequence[ImagePart], head: HeadModule) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.head = head

    def image_features(self, images: Tensor) -> list[Tensor]:
        return [part(images).to(torch.float32) for part in self.parts]

    def forward(self, images: Tensor) -> Tensor:
        return self.head(fuse_features(self.image_features(images)))


class ImageTextClassifier(ImageClassifier):
    """uint8 images (B, 3, S, S) and text features (B, text_dim) -> (B, k) probabilities.

    A zero text row (an image without text) stays zero after fusion, as in Veil.
    """

    def forward(self, images: Tensor, text: Tensor) -> Tensor:  # type: ignore[override]
        parts = [*self.image_features(images), text.to(torch.float32)]
        return self.head(fuse_features(parts))


def classifier_module(
    backbones: Sequence[ImageBackbone], head: LinearHead, *, text_dim: int | None = None
) -> nn.Module:
    """Backbones, fusion and head as one eval-mode module on the CPU.

    ``forward(images)`` or, with ``text_dim``, ``forward(images, text)``: uint8 images
    (B, 3, S, S) with ``S = backbones[0].preprocess.crop`` and float32 text features
    (B, text_dim) -> float32 probabilities (B, k), columns in the order of
    ``head.classes_``. Features are fused in the order ``[backbone_0, ...,
    backbone_m, text]`` exactly as :func:`ml.features.fuse`. The backbones' modules are
    copied, not moved.

    A backbone whose crop differs from ``S`` sees the first backbone's crop resized to
    its own, which is close to, but not exactly, what Veil feeds it (its own resize and
    crop of the decoded image): only the first backbone's input is identical.

    Raises:
        ValueError: no backbone, or a head whose input width is not the sum of the parts'.
    """
    if not backbones:
        raise ValueError("classifier_module needs at least one backbone")
    size = backbones[0].preprocess.crop
    head_part = HeadModule(head)
    width = sum(b.dim for b in backbones) + (text_dim or 0)
    if width != head_part.in_features:
        dims = " + ".join([*(f"{b.name} {b.dim}" for b in backbones), f"text {text_dim or 0}"])
        raise ValueError(f"the head takes {head_part.in_features} features but the parts give {width} ({dims})")
    parts = [ImagePart(backbone, size) for backbone in backbones]
    cls = ImageClassifier if text_dim is None else ImageTextClassifier
    return cls(parts, head_part).eval()


def export_input(image: ImageInput, preprocess: Preprocess) -> Tensor:
    """What a consumer feeds the exported model for one image: uint8 (3, crop, crop).

    ``image`` is a PIL image, a path or encoded bytes; it is decoded exactly as
    :func:`ml.backbones.embed` decodes (upright RGB; a JPEG not yet loaded is decoded
    at a reduced scale of no less than ``preprocess.resize`` pixels a side), then
    resized and centre-cropped with ``preprocess`` (the first backbone's).

    Raises:
        ValueError: the image cannot be decoded.
    """
    rgb = open_rgb(image, label=describe_item(image, 0), draft_size=preprocess.resize)
    return preprocess.pixels(rgb)


def export_classifier(
    path: str | os.PathLike[str],
    backbones: Sequence[ImageBackbone],
    head: LinearHead,
    *,
    card: Mapping[str, Any],
    text_dim: int | None = None,
) -> dict[str, Any]:
    """Writes the classifier (see :func:`classifier_module`) to ``path`` as a ``.pt2``.

    The program takes a dynamic batch size. ``card`` (JSON-compatible: name, version,
    labels' meaning...) is completed with the input and output specification and
    stored in the archive as ``veil_card.json``. The file is written beside ``path``
    and renamed into place.

    Returns:
        The completed card: ``card``'s keys, then ``format``, ``input`` (``{"dtype":
        "uint8", "shape": [None, 3, S, S], "resize": R, "crop": S, "colour": "RGB",
        ...}``), ``text`` (shape [None, text_dim], or None), ``outputs``
        (``"probabilities"``), ``classes``, ``calibration``, ``backbones``, ``fusion``,
        ``load`` and ``torch``.

    Raises:
        ValueError: ``card`` is not JSON-compatible, or see :func:`classifier_module`.
    """
    model = classifier_module(backbones, head, text_dim=text_dim)
    first = backbones[0].preprocess
    size = first.crop
    completed = {
        **card,
        "format": EXPORT_FORMAT,
        "version": 1,
        "input": {
            "dtype": "uint8",
            "shape": [None, 3, size, size],
            "layout": "NCHW",
            "colour": "RGB",
            "resize": first.resize,
            "crop": size,
            "resize_rule": "shorter side to 'resize', longer side to floor(resize * long / "
            "short), bilinear with antialiasing (PIL Image.resize, BILINEAR)",
            "crop_rule": "centre crop 'crop' x 'crop' at offsets round((side - crop) / 2)",
            "decode": "upright (EXIF orientation applied), RGB; JPEGs through PIL draft mode "
            "(Image.draft('RGB', (resize, resize))) as Veil decodes them; a full JPEG decode "
            "gives embeddings within cosine 0.999",
        },
        "text": None if text_dim is None else {"dtype": "float32", "shape": [None, text_dim]},
        "outputs": "probabilities",
        "classes": head.classes_.tolist(),
        "calibration": head.calibration_,
        "backbones": [
            {"name": b.name, "dim": b.dim, "preprocess": b.preprocess.to_dict(), "source": b.source} for b in backbones
        ],
        "fusion": "each part L2-normalised, weighted 1/sqrt(parts), concatenated in order [backbones..., text]",
        "load": "torch.export.load(path).module()",
        "torch": torch.__version__,
    }
    try:
        card_json = json.dumps(completed)
    except (TypeError, ValueError) as error:
        raise ValueError(f"card is not JSON-compatible: {error}") from error

    generator = torch.Generator().manual_seed(0)
    example: tuple[Tensor, ...] = (torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=generator),)
    batch = torch.export.Dim("batch", min=1)
    dynamic: dict[str, Any] = {"images": {0: batch}}
    if text_dim is not None:
        example = (*example, torch.randn(2, text_dim, generator=generator))
        dynamic["text"] = {0: batch}
    with torch.inference_mode(False), torch.no_grad():
        program = torch.export.export(model, example, dynamic_shapes=dynamic)

    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.export.save(program, handle, extra_files={CARD_FILENAME: card_json})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return completed
