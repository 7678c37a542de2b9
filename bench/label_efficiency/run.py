"""The whole run: features, curves, areas and targets, and the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from bench import harness
from bench.label_efficiency.active import ActiveLoop, _parse_override, parse_variant, variant_name
from bench.label_efficiency.config import (
    DEFAULT_CACHE,
    DEFAULT_FEATURES,
    FEATURES,
    MSN_OVERRIDES,
    PRODUCT_BATCH_SIZE,
    PRODUCT_STRATEGY,
    SEEDS,
    STRATEGIES,
    TEXT_MIN_FRACTION,
    TEXT_SAMPLE,
)
from bench.label_efficiency.curves import (
    auc,
    full_pool_probe,
    run_curve,
    strategy_chooser,
    summarise_seeds,
)
from bench.label_efficiency.datasets import budgets_for, discover_dataset, positive_class
from bench.label_efficiency.features import compute_features
from bench.label_efficiency.report import check_targets, format_table, plot, summary_line
from ml.loop import COLD_START


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Features, curves, areas and targets for one dataset; see the module docstring.

    Torch, the OCR and the BLAS/OpenMP pools (scikit-learn, numpy) run on
    ``args.threads`` threads: on a busy 2-core machine, many small solves and matrix
    products are several times faster single-threaded than contending for both cores.
    """
    torch.set_num_threads(args.threads)
    load_start = harness.load_average()
    with threadpool_limits(limits=args.threads):
        result = _run_benchmark(args)
    result["load_average"] = {"start": list(load_start), "end": list(harness.load_average())}
    return result


def _run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    data = discover_dataset(args.data)
    budgets = budgets_for(len(data.pool_paths))
    positive = positive_class(data.classes, args.positive)
    overrides = {**MSN_OVERRIDES, **dict(args.override)}
    variants = [parse_variant(v) for v in args.active_variant]
    features, info = compute_features(
        data,
        minutes=args.minutes,
        cache=args.cache,
        overrides=overrides,
        skip_pretrain=args.skip_pretrain,
        retrain=args.retrain,
        workers=args.workers,
        text=args.text,
        threads=args.threads,
    )
    result: dict[str, Any] = {
        "dataset": data.describe(),
        "positive_class": None if positive is None else data.classes[positive],
        "budgets": budgets,
        "seeds": list(SEEDS),
        "strategy_features": DEFAULT_FEATURES,
        "auc_definition": (
            f"ml.metrics.learning_curve_auc over log(budget); ratio = area / random mean area on {DEFAULT_FEATURES}"
        ),
        "head": {
            "class": "ml.head.LinearHead",
            "calibrate": args.calibrate,
            "C": "cross-validated",
        },
        "pretrain": info["pretrain"],
        "text": info["text"],
        "minutes": args.minutes,
    }
    if args.features_only:
        result["seconds"] = round(time.perf_counter() - started, 1)
        return result

    n_classes = len(data.classes)
    y, y_test = data.pool_labels, data.test_labels
    common = {"positive": positive, "calibrate": args.calibrate, "n_classes": n_classes}
    feature_names = [name for name in FEATURES if name in features]
    loops = {
        "active": (PRODUCT_STRATEGY, {}),
        **{variant_name(s, p): (s, p) for s, p in variants},
    }
    strategy_names = [n for n in STRATEGIES if n not in ("random", "active")] + list(loops)
    jobs = [("feature", name, seed) for name in feature_names for seed in SEEDS] + [
        ("strategy", name, seed) for name in strategy_names for seed in SEEDS
    ]
    random_runs: dict[str, list[dict[str, list[float]]]] = {n: [] for n in feature_names}
    strategy_runs: dict[str, list[dict[str, list[float]]]] = {n: [] for n in strategy_names}
    loop_rounds: dict[str, list[dict[str, Any]]] = {}
    X, X_test = features[DEFAULT_FEATURES]["pool"], features[DEFAULT_FEATURES]["test"]
    for kind, name, seed in tqdm(jobs, desc="learning curves", unit="curve"):
        if kind == "feature":
            pool, test = features[name]["pool"], features[name]["test"]
            curve = run_curve(pool, y, test, y_test, budgets, strategy_chooser("random", pool, seed), **common)
            random_runs[name].append(curve)
            continue
        if name in loops:
            strategy, params = loops[name]
            chooser = ActiveLoop(
                X,
                strategy=strategy,
                params=params,
                cold_start_labels=args.cold_start_labels,
                round_size=args.round_size,
                seed=seed,
            )
            if seed == SEEDS[0]:
                loop_rounds[name] = chooser.rounds
        else:
            chooser = strategy_chooser(name, X, seed)
        strategy_runs[name].append(run_curve(X, y, X_test, y_test, budgets, chooser, **common))

    result["features"] = {}
    for name in feature_names:
        summary = summarise_seeds(random_runs[name])
        result["features"][name] = {
            "dim": int(features[name]["pool"].shape[1]),
            "random": summary,
            "auc": {m: auc(budgets, s["mean"]) for m, s in summary.items()},
            "full_pool": full_pool_probe(features[name]["pool"], y, features[name]["test"], y_test, **common),
        }
    strategy_runs = {"random": random_runs[DEFAULT_FEATURES], **strategy_runs}
    result["strategies"] = {name: summarise_seeds(runs) for name, runs in strategy_runs.items()}
    result["auc"] = {
        name: {m: auc(budgets, s["mean"]) for m, s in curves.items()} for name, curves in result["strategies"].items()
    }
    result["auc_ratio"] = {
        name: {m: result["auc"][name][m] / result["auc"]["random"][m] for m in result["auc"][name]}
        for name in result["strategies"]
    }
    result["auc_ratio_std"] = {
        name: {
            m: float(
                np.std(
                    [auc(budgets, run[m]) / result["auc"]["random"][m] for run in runs],
                    ddof=1,
                )
            )
            for m in result["auc"][name]
        }
        for name, runs in strategy_runs.items()
    }
    result["active_loop"] = {
        "selection": "ml.loop.choose_batch",
        "strategy": PRODUCT_STRATEGY,
        "cold_start": COLD_START,
        "cold_start_labels": args.cold_start_labels,
        "round_size": args.round_size,
        "product_batch_size": PRODUCT_BATCH_SIZE,
        "head": "LinearHead(random_state=0), as labeling.services.rounds.retrain_fit",
        "variants": {variant_name(s, p): {"strategy": s, "params": p} for s, p in variants},
        "rounds_seed0": loop_rounds,
    }
    result["targets"] = check_targets(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def arguments() -> argparse.ArgumentParser:
    parser = harness.parser(sys.modules[__package__].__doc__, prog="python -m bench.label_efficiency")
    harness.add_data(parser, required=True, help="dataset folder")
    parser.add_argument("--minutes", type=float, default=10.0, help="MSN pretraining budget")
    parser.add_argument("--out", type=Path, help="JSON output (PNG beside it)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="pretraining, embeddings and OCR text")
    parser.add_argument("--skip-pretrain", action="store_true", help="fail unless a backbone is cached")
    parser.add_argument("--retrain", action="store_true", help="discard the cached backbone first")
    parser.add_argument("--features-only", action="store_true", help="pretrain and embed, no curves")
    parser.add_argument(
        "--override",
        action="append",
        type=_parse_override,
        default=[],
        metavar="KEY=VALUE",
        help="MSNConfig override on top of the recipe (repeatable)",
    )
    parser.add_argument("--positive", help="positive class of a binary set")
    parser.add_argument(
        "--text",
        default="auto",
        choices=["auto", "on", "off"],
        help=f"fused image+text features: auto = when >= {TEXT_MIN_FRACTION * 100:.0f}%% of "
        f"{TEXT_SAMPLE} sampled pool images have text",
    )
    parser.add_argument("--cold-start-labels", type=int, default=20)
    parser.add_argument(
        "--round-size",
        type=int,
        default=25,
        help=f"labels per active round (the product's batch is {PRODUCT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--active-variant",
        action="append",
        default=[],
        metavar="STRATEGY[:KEY=VALUE,...]",
        help="also run the active loop with this strategy and parameters (repeatable)",
    )
    parser.add_argument("--calibrate", action="store_true", help="calibrated scoring head (see the docstring)")
    parser.add_argument("--threads", type=int, default=1, help="torch, OCR and BLAS threads")
    parser.add_argument("--workers", type=int, default=2, help="pretraining DataLoader workers")
    return parser


def report(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Writes the JSON file and the plot, prints the table, the MSN run, the load and the
    targets; returns the figures of the final JSON line."""
    name = result["dataset"]["name"]
    out = args.out or args.cache / f"label_efficiency-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    pre = result["pretrain"]
    msn = (
        f"MSN: {pre['steps']} steps in {pre['seconds']:.0f} s ({args.minutes:g} min budget, "
        f"{'cached' if pre['cached'] else 'trained now'}), overrides {pre['overrides']}"
    )
    if args.features_only:
        print(msn)
        return {
            "dataset": name,
            "pretrain": pre,
            "text": result["text"],
            "load_average": result["load_average"],
        }
    png = out.with_suffix(".png")
    result["outputs"] = {"json": str(out), "png": str(png)}
    out.write_text(json.dumps(result, indent=2))
    plot(result, png)
    print(format_table(result))
    print(f"\n{msn}")
    start, end = result["load_average"]["start"], result["load_average"]["end"]
    print(
        f"load average (1, 5, 15 min): start {start[0]:.2f} {start[1]:.2f} {start[2]:.2f}, "
        f"end {end[0]:.2f} {end[1]:.2f} {end[2]:.2f}"
    )
    for key, target in result["targets"].items():
        print(
            f"target {key}: {'met' if target['met'] else 'MISSED'} "
            f"(value {target['value']:.4f}, target {target['target']}; {json.dumps(target)})"
        )
    return summary_line(result)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = arguments()
    args = harness.parse(parser, argv)
    if args.skip_pretrain and args.retrain:
        parser.error("--skip-pretrain and --retrain exclude each other")
    try:
        result = run_benchmark(args)
    except ValueError as error:
        parser.error(str(error))
    harness.emit(report(result, args))
    return result
