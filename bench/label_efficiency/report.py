"""The report: targets, the table, the plot and the final JSON line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from bench.label_efficiency.config import (
    DEFAULT_FEATURES,
    FEATURE_TITLES,
    STRATEGIES,
    TARGET_ACTIVE_RATIO,
    TARGET_COLD_START_GAIN,
    TARGET_DEFAULT_OVER_RAW,
    TEXT_FEATURES,
)
from ml.loop import COLD_START


def _fmt(value: float | None) -> str:
    return "null" if value is None else f"{value:.3f}"


def curve_names(result: dict[str, Any]) -> list[str]:
    """The strategy curves of a result: :data:`STRATEGIES`, then active-loop variants."""
    return [*STRATEGIES, *[n for n in result["strategies"] if n not in STRATEGIES]]


def format_table(result: dict[str, Any]) -> str:
    """The printed table: one block per metric, one row per curve, AUC and ratio."""
    budgets = result["budgets"]
    lines = []
    metrics = ["accuracy", "macro_f1"] + (["recall_at_80p"] if result["positive_class"] is not None else [])
    n_seeds = len(result["seeds"])
    width = 44
    head = f"{'curve':<{width}}" + "".join(f"{b:>8}" for b in budgets) + f"{'AUC':>8}{'ratio':>8}{'± seeds':>9}"
    for metric in metrics:
        lines += [
            "",
            f"{metric} ({result['dataset']['name']}, test n={result['dataset']['test_size']}; "
            f"strategies on {result['strategy_features']}, mean of {n_seeds} seeds)",
            head,
        ]
        random_auc = result["auc"]["random"][metric]
        for name in curve_names(result):
            curve = result["strategies"][name][metric]
            row = f"{name:<{width}}" + "".join(f"{v:>8.3f}" for v in curve["mean"])
            area = result["auc"][name][metric]
            spread = result["auc_ratio_std"][name][metric]
            lines.append(row + f"{area:>8.3f}{area / random_auc:>8.3f}{spread:>9.3f}")
            if name == "random":
                std = curve["std"]
                lines.append(f"{'  random ± std over seeds':<{width}}" + "".join(f"{v:>8.3f}" for v in std))
        for name in result["features"]:
            curve = result["features"][name]["random"][metric]
            area = result["features"][name]["auc"][metric]
            label = f"random, {FEATURE_TITLES.get(name, name)}"
            lines.append(f"{label:<{width}}" + "".join(f"{v:>8.3f}" for v in curve["mean"]) + f"{area:>8.3f}")
    lines += ["", "full-pool linear probe (all pool labels):"]
    for name, entry in result["features"].items():
        probe = entry["full_pool"]
        lines.append(
            f"  {FEATURE_TITLES.get(name, name):<{width - 2}} accuracy {_fmt(probe['accuracy'])}"
            f"  macro-F1 {_fmt(probe['macro_f1'])}  (dim {entry['dim']})"
        )
    text = result["text"]
    if not text["used"]:
        seen = (
            f"text in {text['sample_with_text']} of {text['sample']} sampled pool images"
            if "sample" in text
            else "--text off"
        )
        lines.append(f"  {FEATURE_TITLES[TEXT_FEATURES]:<{width - 2}} skipped ({seen})")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Learning curves (accuracy, macro-F1, recall@80%P when binary) and the features."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["budgets"]
    metrics = ["accuracy", "macro_f1"] + (["recall_at_80p"] if result["positive_class"] is not None else [])
    n_cols = 2
    n_rows = math.ceil((len(metrics) + 1) / n_cols)
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 4.5 * n_rows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(metrics) + 1 :]:
        ax.axis("off")
    for ax, metric in zip(axes, metrics, strict=False):
        for name in curve_names(result):
            curve = result["strategies"][name][metric]
            mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
            if name == "random":
                ax.plot(budgets, mean, "k--", label=f"random (mean of {len(result['seeds'])})")
                ax.fill_between(budgets, mean - std, mean + std, color="k", alpha=0.12)
            else:
                ratio = result["auc_ratio"][name][metric]
                (line,) = ax.plot(budgets, mean, marker="o", label=f"{name} (AUC ×{ratio:.3f})")
                ax.fill_between(budgets, mean - std, mean + std, color=line.get_color(), alpha=0.08)
        ax.set(
            xscale="log",
            xlabel="labels",
            ylabel=metric,
            title=f"{metric}, {result['strategy_features']} features",
        )
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[len(metrics)]
    for name, entry in result["features"].items():
        curve = entry["random"]["accuracy"]
        mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
        ax.plot(budgets, mean, marker="o", label=FEATURE_TITLES.get(name, name))
        ax.fill_between(budgets, mean - std, mean + std, alpha=0.12)
    ax.set(xscale="log", xlabel="labels", ylabel="accuracy", title="features (random sampling)")
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(f"Label efficiency on {result['dataset']['name']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_line(result: dict[str, Any]) -> dict[str, Any]:
    """The one JSON line the run ends with."""

    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    features, targets = result["features"], result["targets"]
    ratios = result["auc_ratio"]

    def full(name: str) -> float | None:
        return features[name]["full_pool"]["accuracy"] if name in features else None

    def at(name: str, budget: int) -> float | None:
        budgets = result["budgets"]
        if name not in features or budget not in budgets:
            return None
        return features[name]["random"]["accuracy"]["mean"][budgets.index(budget)]

    pre = result["pretrain"]
    line = {
        "dataset": result["dataset"]["name"],
        "strategy_features": result["strategy_features"],
        "active_auc_ratio": r(ratios["active"]["accuracy"]),
        "diversity_auc_ratio": r(ratios["diversity"]["accuracy"]),
        "typicality_auc_ratio": r(ratios["typicality"]["accuracy"]),
        "prototypes_auc_ratio": r(ratios["prototypes"]["accuracy"]),
        "active_macro_f1_auc_ratio": r(ratios["active"]["macro_f1"]),
        "diversity_macro_f1_auc_ratio": r(ratios["diversity"]["macro_f1"]),
        "typicality_macro_f1_auc_ratio": r(ratios["typicality"]["macro_f1"]),
        "random_auc": r(result["auc"]["random"]["accuracy"]),
        "cold_start_gain_at_20": r(targets["cold_start_gain_at_20"]["value"])
        if "cold_start_gain_at_20" in targets
        else None,
        "default_full_pool_accuracy": r(full(DEFAULT_FEATURES)),
        "raw_full_pool_accuracy": r(full("raw_pixels")),
        "default_at_50": r(at(DEFAULT_FEATURES, 50)),
        "raw_at_50": r(at("raw_pixels", 50)),
        "text_fused_full_pool_accuracy": r(full(TEXT_FEATURES)),
        "msn_full_pool_accuracy": r(full("msn")),
        "msn_at_50": r(at("msn", 50)),
        "targets_met": {key: target["met"] for key, target in targets.items()},
        "msn_minutes": result["minutes"],
        "pretrain_steps": pre["steps"],
        "load_average_start": [round(v, 2) for v in result["load_average"]["start"]],
        "load_average_end": [round(v, 2) for v in result["load_average"]["end"]],
        "seconds": result["seconds"],
    }
    variants = [n for n in result["strategies"] if n not in STRATEGIES]
    if variants:
        line["variant_auc_ratios"] = {n: r(ratios[n]["accuracy"]) for n in variants}
    line.update(result.get("outputs", {}))
    return line


def check_targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the measured value, the target and whether it is met.

    - ``default_beats_raw``: the default backbone's random curve is at least 10 points
      above raw pixels' at 50 labels, and its full-pool probe 10 points above theirs;
    - ``active_auc_ratio``: the active loop's accuracy area over random's, at least 1.05;
    - ``cold_start_gain_at_20``: the cold start's (prototypes) accuracy at 20 labels minus
      random's, at least 3 points.
    """
    budgets = result["budgets"]
    features = result["features"]
    random_acc = result["strategies"]["random"]["accuracy"]["mean"]
    targets: dict[str, Any] = {}
    gaps: dict[str, float] = {}
    if 50 in budgets:
        i = budgets.index(50)
        gaps["at_50"] = (
            features[DEFAULT_FEATURES]["random"]["accuracy"]["mean"][i]
            - features["raw_pixels"]["random"]["accuracy"]["mean"][i]
        )
    gaps["full_pool"] = (
        features[DEFAULT_FEATURES]["full_pool"]["accuracy"] - features["raw_pixels"]["full_pool"]["accuracy"]
    )
    targets["default_beats_raw"] = {
        "value": min(gaps.values()),
        "gaps": gaps,
        "target": TARGET_DEFAULT_OVER_RAW,
        "met": min(gaps.values()) >= TARGET_DEFAULT_OVER_RAW,
    }
    ratio = result["auc_ratio"]["active"]["accuracy"]
    targets["active_auc_ratio"] = {
        "value": ratio,
        "target": TARGET_ACTIVE_RATIO,
        "met": ratio >= TARGET_ACTIVE_RATIO,
    }
    if 20 in budgets:
        i = budgets.index(20)
        gain = result["strategies"][COLD_START]["accuracy"]["mean"][i] - random_acc[i]
        targets["cold_start_gain_at_20"] = {
            "value": gain,
            "strategy": COLD_START,
            "active_gain": result["strategies"]["active"]["accuracy"]["mean"][i] - random_acc[i],
            "target": TARGET_COLD_START_GAIN,
            "met": gain >= TARGET_COLD_START_GAIN,
        }
    return targets
