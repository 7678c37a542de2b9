"""The benchmark's fixed choices: budgets, seeds, the product's defaults, feature sets and targets."""

from __future__ import annotations

from typing import Any

from bench.harness import ROOT
from ml.backbones import DEFAULT_BACKBONE
from ml.features import fused_name

DEFAULT_CACHE = ROOT / "bench" / "out"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
TEST_SPLIT_NAMES = ("test", "validation", "val")
"""Split folder names that make the test split, in order of preference (case-insensitive)."""
TEST_FRACTION = 0.25
SPLIT_SEED = 0
BUDGETS = (10, 20, 50, 100, 200, 500)
SEEDS = (0, 1, 2, 3, 4)
"""Every curve is drawn once per seed; tables and ratios use the mean curve."""
PRECISION_TARGET = 0.8
RAW_PIXELS_SIZE = 16
NEGATIVE_PREFIXES = ("not_", "not-", "non_", "non-", "no_", "no-")

PRODUCT_STRATEGY = "combined"
"""The product's default selection strategy (``labeling.models.Project.strategy``)."""
PRODUCT_BATCH_SIZE = 100
"""Images per round in the product (``labeling.models.Project.batch_size``)."""


TEXT_SAMPLE = 100
"""Pool images read to decide whether a set carries text."""
TEXT_MIN_FRACTION = 0.2
"""Share of the sample with text from which the fused image+text set is used."""
TEXT_SEED = 0

TARGET_DEFAULT_OVER_RAW = 0.10
TARGET_ACTIVE_RATIO = 1.05
TARGET_COLD_START_GAIN = 0.03

MSN_OVERRIDES: dict[str, Any] = {"batch_size": 32, "focal_views": 2, "ema_base": 0.97, "lr": 1e-3}
"""The recipe on top of ``MSNConfig.preset("tiny")``; the tiny architecture is kept.

A CPU budget of minutes buys a few hundred steps, so the recipe trades views per image
for steps: half the batch and two focal views instead of six cost about a third of the
tokens per step, for three times the updates. The EMA target starts at momentum 0.97
instead of 0.996, which would leave the target (the backbone that is embedded) more
than half its initial weights after a few hundred steps; the peak learning rate is
doubled for the short schedule. Class-token pooling: mean pooling was not better.
"""


DEFAULT_FEATURES = DEFAULT_BACKBONE
"""The feature set every strategy curve runs on: the product's default backbone."""
TEXT_FEATURES = fused_name([DEFAULT_BACKBONE, "text"])
"""The default backbone fused with the text in the images (the product's name for it)."""
FEATURES = ("raw_pixels", "random_vit", "msn", DEFAULT_FEATURES, TEXT_FEATURES)
"""Feature sets compared with random sampling; the text set only when it was computed."""
FEATURE_TITLES = {
    "raw_pixels": f"raw pixels {RAW_PIXELS_SIZE}x{RAW_PIXELS_SIZE}",
    "random_vit": "random-init ViT",
    "msn": "MSN ViT (tiny)",
    DEFAULT_FEATURES: f"{DEFAULT_BACKBONE} (default)",
    TEXT_FEATURES: f"{DEFAULT_BACKBONE} + OCR text",
}
STRATEGIES = ("random", "diversity", "typicality", "prototypes", "active")
