"""The product's labeling loop as a chooser: :class:`ActiveLoop` over ``ml.loop.choose_batch``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bench.label_efficiency.config import PRODUCT_STRATEGY
from bench.label_efficiency.curves import SimulatedAnnotator, product_head
from ml import loop


class ActiveLoop:
    """The product's labeling loop as a chooser for :func:`run_curve`.

    Each round either runs the cold start (fewer than ``cold_start_labels`` labels) or
    fits ``head()`` on the labels so far and passes its probabilities over ``X`` (n, d)
    to ``ml.loop.choose_batch(strategy, ...)``. With labels of fewer than two classes
    there is no head: ``proba`` is None and ``choose_batch`` runs the cold start, as the
    product does before its first head. Cold-start rounds fill up to
    ``cold_start_labels``; later rounds hold at most ``round_size`` labels. A round never
    passes the target budget. ``params`` go to the strategy (the product passes none).

    ``rounds`` records each round: labels before it, its size and the strategy
    ``choose_batch`` used.
    """

    def __init__(
        self,
        X: np.ndarray,
        *,
        strategy: str = PRODUCT_STRATEGY,
        cold_start_labels: int = 20,
        round_size: int = 25,
        seed: int = 0,
        params: Mapping[str, Any] | None = None,
        head: Callable[[], Any] = product_head,
    ) -> None:
        if cold_start_labels < 0 or round_size < 1:
            raise ValueError("cold_start_labels must be >= 0 and round_size >= 1")
        self.X = X
        self.strategy = strategy
        self.cold_start_labels = cold_start_labels
        self.round_size = round_size
        self.seed = seed
        self.params = dict(params or {})
        self.head = head
        self.rounds: list[dict[str, Any]] = []

    def __call__(self, annotator: SimulatedAnnotator, target: int) -> np.ndarray:
        while len(annotator.revealed) < target:
            labeled = annotator.labeled
            proba = None
            if len(labeled) < self.cold_start_labels:
                need = min(target, self.cold_start_labels) - len(labeled)
            else:
                need = min(target - len(labeled), self.round_size)
                if self.strategy in loop.NEEDS_PROBA and np.unique(annotator.labels).size >= 2:
                    proba = self.head().fit(self.X[labeled], annotator.labels).predict_proba(self.X)
            picked, used = loop.choose_batch(
                self.strategy,
                X=self.X,
                proba=proba,
                budget=need,
                labeled=labeled,
                random_state=self.seed,
                **self.params,
            )
            if len(picked) == 0:
                raise ValueError("choose_batch returned no images while the pool has unlabeled ones")
            annotator.reveal(picked)
            self.rounds.append({"labels": int(len(labeled)), "size": int(len(picked)), "strategy": used})
        return annotator.labeled


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"STRATEGY[:KEY=VALUE,...]"`` -> ``(strategy, params)``; values are JSON when they
    parse as JSON, else strings. ``"combined:method=entropy,pool_factor=10"``."""
    strategy, _, rest = text.partition(":")
    if not strategy:
        raise ValueError(f"variant {text!r} names no strategy")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, value = _parse_override(item)
        params[key] = value
    return strategy, params


def variant_name(strategy: str, params: Mapping[str, Any]) -> str:
    """The curve name of an active-loop variant: ``active[combined:method=entropy]``."""
    detail = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"active[{strategy}{':' + detail if detail else ''}]"


def _parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key, tuple(parsed) if isinstance(parsed, list) else parsed
