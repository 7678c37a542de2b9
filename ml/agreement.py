"""Inter-annotator agreement, label aggregation and annotator quality.

Pure functions over one annotation table given as three parallel sequences of length
``n``: ``items`` (image ids), ``annotators`` (user ids) and ``labels`` (category
values). Each row is one annotator's current label of one item; an (item, annotator)
pair appears at most once (retracted labels are removed by the caller). Ids and labels
are any hashable values (ints or strings); numpy arrays and numpy scalars are accepted
and come back as Python scalars.

``categories`` is the project's taxonomy, in its display order. Every label must be one
of them. It fixes the column order of every matrix, breaks ties (the category earliest in
``categories`` wins), and lets categories nobody used still count where a statistic
needs them (Cohen's and Fleiss' chance terms ignore them, as their definitions do).

Outputs are JSON-friendly: dicts and lists of Python ints, floats, strings and ``None``
(a statistic that is undefined on the data, such as a kappa when everybody used one
category, is ``None``), except :class:`DawidSkeneResult.confusion`, which holds numpy
arrays. Items and annotators appear in the order of their first row.

The statistics match their reference implementations on the same data:
``sklearn.metrics.cohen_kappa_score``, ``statsmodels.stats.inter_rater.fleiss_kappa``,
``krippendorff.alpha(..., level_of_measurement="nominal")`` and crowd-kit's
``DawidSkene`` (same EM, same initialisation from the majority vote).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from scipy import sparse

Label = Hashable

_EPS = 1e-10  # probability floor of the Dawid-Skene parameters, as in crowd-kit
_CL_SLACK = 1e-6  # confident learning compares p >= t - slack, as cleanlab does
_UNSEEN_CLASS_THRESHOLD = 0.5


class ItemAgreement(TypedDict):
    n: int
    agreement: float
    entropy: float
    majority: Label
    counts: dict[Label, int]


class KappaPair(TypedDict):
    a: Hashable
    b: Hashable
    n_common: int
    kappa: float | None


class FleissResult(TypedDict):
    kappa: float | None
    n_items: int
    n_raters: int | None
    n_items_excluded: int
    per_category: dict[Label, float | None]


class AlphaResult(TypedDict):
    alpha: float | None
    n_items: int
    n_pairable: int
    per_category: dict[Label, float | None]


class AnnotatorConfusion(TypedDict):
    labels: list[Label]
    matrix: list[list[int]]
    accuracy: float | None
    n: int


class Disagreement(TypedDict):
    item: Hashable
    given: Label
    predicted: Label
    confidence: float
    margin: float


@dataclass(frozen=True)
class DawidSkeneResult:
    """Outcome of :func:`dawid_skene`.

    ``labels``: item → most probable true label. ``posteriors``: item → {label: P(true
    label | annotations)} over every category. ``confusion``: annotator → array of shape
    (k, k), row = true category, column = the annotator's label, rows sum to 1, in
    ``categories`` order. ``priors``: category → estimated share of true labels.
    """

    labels: dict[Hashable, Label]
    posteriors: dict[Hashable, dict[Label, float]]
    confusion: dict[Hashable, np.ndarray]
    priors: dict[Label, float]


@dataclass(frozen=True)
class _Table:
    """The annotation table as integer codes.

    ``item``, ``annotator``, ``label``: shape (n,), indices into ``item_ids`` (m,),
    ``annotator_ids`` (a,) and ``categories`` (k,).
    """

    item_ids: list[Hashable]
    annotator_ids: list[Hashable]
    categories: list[Label]
    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray

    @property
    def k(self) -> int:
        return len(self.categories)

    def counts(self) -> np.ndarray:
        """Shape (m, k): how many annotators gave each item each category."""
        m, k = len(self.item_ids), self.k
        flat = np.bincount(self.item * k + self.label, minlength=m * k)
        return flat.reshape(m, k)


# --------------------------------------------------------------------------- validation


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _as_list(values: Any, name: str) -> list[Any]:
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {values.shape}.")
        return values.tolist()
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a sequence of values, not a single string.")
    return [_native(v) for v in values]


def _codes(values: list[Any]) -> tuple[list[Any], np.ndarray]:
    """Unique values in first-appearance order and the code of each value, shape (n,)."""
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.intp, len(values))
    return list(index), codes


def _categories(categories: Sequence[Label], name: str = "categories") -> tuple[list, dict]:
    cats = _as_list(categories, name)
    if not cats:
        raise ValueError(f"{name} must not be empty.")
    position = {c: i for i, c in enumerate(cats)}
    if len(position) != len(cats):
        raise ValueError(f"{name} holds duplicate values.")
    return cats, position


def _label_codes(values: list[Any], position: dict, name: str, against: str) -> np.ndarray:
    unknown = [v for v in dict.fromkeys(values) if v not in position]
    if unknown:
        raise ValueError(f"{name} holds values missing from {against}: {unknown[:10]!r}.")
    return np.fromiter((position[v] for v in values), np.intp, len(values))


def _table(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
) -> _Table:
    item_list = _as_list(items, "items")
    annotator_list = _as_list(annotators, "annotators")
    label_list = _as_list(labels, "labels")
    for name, values in (("annotators", annotator_list), ("labels", label_list)):
        if len(values) != len(item_list):
            raise ValueError(
                f"{name} has {len(values)} entries but items has {len(item_list)}; "
                "items, annotators and labels must be parallel."
            )
    cats, position = _categories(categories)
    label = _label_codes(label_list, position, "labels", "categories")
    item_ids, item = _codes(item_list)
    annotator_ids, annotator = _codes(annotator_list)
    pair = item * max(len(annotator_ids), 1) + annotator
    unique_pairs, first, counts = np.unique(pair, return_index=True, return_counts=True)
    if unique_pairs.size and counts.max() > 1:
        row = int(first[np.argmax(counts > 1)])
        raise ValueError(
            "items and annotators repeat a pair (one row per annotator and item): "
            f"item {item_list[row]!r}, annotator {annotator_list[row]!r}."
        )
    return _Table(item_ids, annotator_ids, cats, item, annotator, label)


# --------------------------------------------------------------------------- per item


def item_agreement(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
) -> dict[Hashable, ItemAgreement]:
    """Agreement of the annotators of each item.

    Parameters
    ----------
    items, annotators, labels:
        Shape (n,), parallel; see the module docstring.
    categories:
        Shape (k,), the taxonomy in display order.

    Returns
    -------
    item → ``{"n", "agreement", "entropy", "majority", "counts"}``: ``n`` labels;
    ``majority`` the most frequent label (ties: earliest in ``categories``);
    ``agreement`` the share of labels equal to it, in (0, 1]; ``entropy`` the Shannon
    entropy in bits of the item's label distribution (0 when unanimous); ``counts``
    label → count for the labels used on the item, in ``categories`` order.
    """
    table = _table(items, annotators, labels, categories)
    counts = table.counts()
    n = counts.sum(axis=1)
    majority = counts.argmax(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / n[:, None]
        entropy = -np.where(counts > 0, p * np.log2(np.where(counts > 0, p, 1.0)), 0.0).sum(1)
    out: dict[Hashable, ItemAgreement] = {}
    for i, item_id in enumerate(table.item_ids):
        row = counts[i]
        out[item_id] = {
            "n": int(n[i]),
            "agreement": float(row[majority[i]] / n[i]),
            "entropy": float(max(entropy[i], 0.0)),
            "majority": table.categories[majority[i]],
            "counts": {table.categories[c]: int(row[c]) for c in np.flatnonzero(row)},
        }
    return out


def majority_vote(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
) -> dict[Hashable, Label]:
    """Item → most frequent label; ties go to the category earliest in ``categories``.

    Shapes as in :func:`item_agreement`.
    """
    table = _table(items, annotators, labels, categories)
    majority = table.counts().argmax(axis=1)
    return {item_id: table.categories[c] for item_id, c in zip(table.item_ids, majority, strict=True)}


# --------------------------------------------------------------------------- chance-corrected


def _kappa_from_confusion(confusion: np.ndarray) -> float | None:
    """Cohen's kappa of a (k, k) count matrix; None when chance agreement is 1."""
    n = int(confusion.sum())
    observed_disagreement = n - int(np.trace(confusion))
    rows, cols = confusion.sum(axis=1), confusion.sum(axis=0)
    expected_disagreement = n * n - int(rows @ cols)  # times n, exact in integers
    if expected_disagreement == 0:
        return None
    return float(1.0 - observed_disagreement * n / expected_disagreement)


def cohen_kappa_pairs(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
    *,
    min_common: int = 2,
) -> list[KappaPair]:
    """Cohen's kappa of every pair of annotators on the items both labelled.

    Equal to ``sklearn.metrics.cohen_kappa_score`` on the pair's common items.

    Parameters
    ----------
    items, annotators, labels, categories:
        As in :func:`item_agreement`.
    min_common:
        Pairs sharing fewer items are left out (default 2).

    Returns
    -------
    One ``{"a", "b", "n_common", "kappa"}`` per pair, ``a`` before ``b`` in the order
    annotators first appear, sorted by that order. ``kappa`` is None when undefined:
    both annotators used one and the same category on every common item.
    """
    if min_common < 1:
        raise ValueError(f"min_common must be at least 1, got {min_common}.")
    table = _table(items, annotators, labels, categories)
    k, n_annotators = table.k, len(table.annotator_ids)
    if len(table.item) == 0:
        return []
    # Rows sorted by item, then annotator: the rows of one item are contiguous, and
    # row r pairs with row r + d for every offset d within the item's block.
    order = np.lexsort((table.annotator, table.item))
    item, annotator, label = table.item[order], table.annotator[order], table.label[order]
    max_raters = int(np.bincount(item).max())
    pair_parts, la_parts, lb_parts = [], [], []
    for d in range(1, max_raters):
        same = item[:-d] == item[d:]
        pair_parts.append(annotator[:-d][same] * n_annotators + annotator[d:][same])
        la_parts.append(label[:-d][same])
        lb_parts.append(label[d:][same])
    if not pair_parts:
        return []
    pair = np.concatenate(pair_parts)
    pair_ids, pair_code = np.unique(pair, return_inverse=True)
    flat = pair_code * (k * k) + np.concatenate(la_parts) * k + np.concatenate(lb_parts)
    confusion = np.bincount(flat, minlength=len(pair_ids) * k * k).reshape(-1, k, k)
    out: list[KappaPair] = []
    for p, code in enumerate(pair_ids):
        n_common = int(confusion[p].sum())
        if n_common < min_common:
            continue
        a, b = divmod(int(code), n_annotators)
        out.append(
            {
                "a": table.annotator_ids[a],
                "b": table.annotator_ids[b],
                "n_common": n_common,
                "kappa": _kappa_from_confusion(confusion[p]),
            }
        )
    return out


def _fleiss(table: np.ndarray) -> float | None:
    """Fleiss' kappa of an (items, categories) count table with equal row sums ≥ 2."""
    n_items = table.shape[0]
    if n_items == 0:
        return None
    m = int(table[0].sum())
    total = n_items * m
    column = table.sum(axis=0)
    chance_disagreement = total * total - int(column @ column)  # (1 - P_e) * total**2
    if chance_disagreement == 0:
        return None
    p_mean = float(((table * table).sum(axis=1) - m).sum()) / (n_items * m * (m - 1))
    p_exp = float(column @ column) / (total * total)
    return float((p_mean - p_exp) / (1.0 - p_exp))


def fleiss_kappa(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
) -> FleissResult:
    """Fleiss' kappa, overall and one-vs-rest per category.

    Fleiss' kappa needs the same number of raters on every item. This uses the items
    whose rater count is the most common count among items with at least two raters (a
    tie goes to the larger count); the other items are counted in
    ``n_items_excluded``. On the (items, categories) count table of those items the
    result equals ``statsmodels.stats.inter_rater.fleiss_kappa(table)``; the kappa of
    category c is the same statistic on the two-column table (raters who chose c, raters
    who did not), which is Fleiss' (1971) per-category kappa.

    Parameters
    ----------
    items, annotators, labels, categories:
        As in :func:`item_agreement`.

    Returns
    -------
    ``{"kappa", "n_items", "n_raters", "n_items_excluded", "per_category"}``:
    ``n_items`` items with ``n_raters`` raters each were used (``n_raters`` None when no
    item has two raters). ``kappa`` is None when undefined (no usable item, or every
    rating in one category); ``per_category`` maps every category to its kappa, None
    for a category used by all or none of the ratings.
    """
    table = _table(items, annotators, labels, categories)
    counts = table.counts()
    raters = counts.sum(axis=1)
    eligible = raters[raters >= 2]
    if eligible.size == 0:
        return {
            "kappa": None,
            "n_items": 0,
            "n_raters": None,
            "n_items_excluded": int(len(raters)),
            "per_category": dict.fromkeys(table.categories),
        }
    frequency = np.bincount(eligible)
    m = int(np.flatnonzero(frequency == frequency.max())[-1])
    used = counts[raters == m]
    per_category: dict[Label, float | None] = {}
    for c, category in enumerate(table.categories):
        binary = np.stack([used[:, c], m - used[:, c]], axis=1)
        per_category[category] = _fleiss(binary)
    return {
        "kappa": _fleiss(used),
        "n_items": int(used.shape[0]),
        "n_raters": m,
        "n_items_excluded": int(len(raters) - used.shape[0]),
        "per_category": per_category,
    }


def _nominal_alpha(counts: np.ndarray) -> float | None:
    """Krippendorff's nominal alpha of a (units, values) count table of pairable units."""
    m = counts.sum(axis=1)
    n = int(m.sum())
    if n == 0:
        return None
    n_value = counts.sum(axis=0)
    expected = n * n - int(n_value @ n_value)  # (n - 1) times the expected disagreement
    if expected == 0:
        return None
    observed_agreement = float((((counts * counts).sum(axis=1) - m) / (m - 1)).sum())
    observed = n - observed_agreement  # off-diagonal mass of the coincidence matrix
    return float(1.0 - (n - 1) * observed / expected)


def krippendorff_alpha_nominal(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
) -> AlphaResult:
    """Krippendorff's alpha for nominal data, overall and one-vs-rest per category.

    Items may be rated by different subsets of annotators (missing values); items with
    a single rating carry no pairable value and drop out, as in the definition. Equal to
    ``krippendorff.alpha(reliability_data, level_of_measurement="nominal")`` where
    ``reliability_data`` has shape (annotators, items) with ``nan`` for missing ratings;
    the alpha of category c is the same on the data recoded to 1 (c) / 0 (any other).

    Parameters
    ----------
    items, annotators, labels, categories:
        As in :func:`item_agreement`.

    Returns
    -------
    ``{"alpha", "n_items", "n_pairable", "per_category"}``: ``n_items`` items with at
    least two ratings, holding ``n_pairable`` ratings. ``alpha`` is None when undefined
    (no pairable item, or all pairable ratings in one category); ``per_category`` maps
    every category to its alpha, None likewise.
    """
    table = _table(items, annotators, labels, categories)
    counts = table.counts()
    pairable = counts[counts.sum(axis=1) >= 2]
    m = pairable.sum(axis=1)
    per_category: dict[Label, float | None] = {}
    for c, category in enumerate(table.categories):
        binary = np.stack([pairable[:, c], m - pairable[:, c]], axis=1)
        per_category[category] = _nominal_alpha(binary)
    return {
        "alpha": _nominal_alpha(pairable),
        "n_items": int(pairable.shape[0]),
        "n_pairable": int(m.sum()),
        "per_category": per_category,
    }


# --------------------------------------------------------------------------- Dawid-Skene


@dataclass(frozen=True)
class _DSData:
    """Annotations for EM over k used categories, as sparse sums.

    ``annotator``, ``label``: shape (n,). ``by_item``: (m, n) sums rows per item.
    ``by_cell``: (a * k, n) sums rows per (annotator, given label).
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    by_item: sparse.csr_array
    by_cell: sparse.csr_array
    n_annotators: int
    k: int

    @classmethod
    def build(cls, item, annotator, label, n_items: int, n_annotators: int, k: int) -> _DSData:
        n = len(item)
        ones, rows = np.ones(n), np.arange(n)
        by_item = sparse.csr_array((ones, (item, rows)), shape=(n_items, n))
        by_cell = sparse.csr_array((ones, (annotator * k + label, rows)), shape=(n_annotators * k, n))
        return cls(item, annotator, label, by_item, by_cell, n_annotators, k)


def _ds_m_step(data: _DSData, posterior: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Priors (k,) and confusion (a, k, k), row = true, from posteriors (m, k)."""
    priors = np.clip(posterior.mean(axis=0), _EPS, None)
    given_true = (data.by_cell @ posterior[data.item]).reshape(data.n_annotators, data.k, data.k)
    confusion = np.clip(given_true.transpose(0, 2, 1) + smoothing, _EPS, None)
    confusion /= confusion.sum(axis=2, keepdims=True)
    return priors, confusion


def _ds_e_step(data: _DSData, priors: np.ndarray, confusion: np.ndarray) -> tuple[np.ndarray, float]:
    """Posteriors (m, k) and the log-likelihood of the annotations."""
    logits = data.by_item @ np.log(confusion)[data.annotator, :, data.label] + np.log(priors)
    top = logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits - top)
    norm = scaled.sum(axis=1, keepdims=True)
    log_likelihood = float((top + np.log(norm)).sum())
    return scaled / norm, log_likelihood


def dawid_skene(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
    *,
    n_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.0,
) -> DawidSkeneResult:
    """Consensus labels by Dawid and Skene's (1979) EM over annotator confusion matrices.

    Initialised from the soft majority vote (each item's label shares), then alternates
    the M-step (class priors and each annotator's confusion matrix from the current
    posteriors) and the E-step (posteriors from priors and confusion matrices), as
    crowd-kit's ``DawidSkene`` does: probabilities are floored at 1e-10 rather than
    smoothed, so on the same data the consensus labels are the same.

    Only the categories somebody used take part: a category with no label in the data
    has no identifiable confusion and gets posterior and prior 0 (and a uniform row in
    the confusion matrices), as crowd-kit, which only knows the labels it saw, does.

    Parameters
    ----------
    items, annotators, labels, categories:
        As in :func:`item_agreement`.
    n_iter:
        Maximum number of EM iterations (≥ 1).
    tol:
        Stop once the mean log-likelihood per annotation improves by less than this.
    smoothing:
        Pseudo-count added to every confusion-matrix cell before normalising; 0 (the
        default) is the classic estimator. A small value such as 0.01 keeps an annotator
        seen on few items from vetoing categories.

    Returns
    -------
    A :class:`DawidSkeneResult`; ties in the posteriors go to the category earliest in
    ``categories``. With no annotations every field is empty except ``priors``, which
    is uniform.
    """
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1, got {n_iter}.")
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol}.")
    if smoothing < 0:
        raise ValueError(f"smoothing must be non-negative, got {smoothing}.")
    table = _table(items, annotators, labels, categories)
    k = table.k
    if len(table.item) == 0:
        return DawidSkeneResult({}, {}, {}, dict.fromkeys(table.categories, 1.0 / k))
    # Unused categories stay out of EM: with floored (near-zero) confusion cells for
    # the categories in use, an unidentified uniform one would soak up every item whose
    # labels the fitted matrices call unlikely.
    counts = table.counts()
    used = np.flatnonzero(counts.sum(axis=0))
    remap = np.full(k, -1, dtype=np.intp)
    remap[used] = np.arange(used.size)
    n_items, n_annotators, n_rows = len(table.item_ids), len(table.annotator_ids), len(table.item)
    data = _DSData.build(table.item, table.annotator, remap[table.label], n_items, n_annotators, used.size)
    posterior = counts[:, used] / counts.sum(axis=1, keepdims=True)
    priors, confusion = _ds_m_step(data, posterior, smoothing)
    previous = -np.inf
    for _ in range(n_iter):
        posterior, log_likelihood = _ds_e_step(data, priors, confusion)
        priors, confusion = _ds_m_step(data, posterior, smoothing)
        if (log_likelihood - previous) / n_rows < tol:
            break
        previous = log_likelihood
    full_posterior = np.zeros((n_items, k))
    full_posterior[:, used] = posterior
    full_confusion = np.full((n_annotators, k, k), 1.0 / k)
    full_confusion[:, used, :] = 0.0
    full_confusion[np.ix_(np.arange(n_annotators), used, used)] = confusion
    posterior, confusion = full_posterior, full_confusion
    best = posterior.argmax(axis=1)
    cats = table.categories
    return DawidSkeneResult(
        labels={item_id: cats[c] for item_id, c in zip(table.item_ids, best, strict=True)},
        posteriors={
            item_id: {cat: float(p) for cat, p in zip(cats, row, strict=True)}
            for item_id, row in zip(table.item_ids, posterior, strict=True)
        },
        confusion={a: confusion[i] for i, a in enumerate(table.annotator_ids)},
        priors={cat: float(p) for cat, p in zip(cats, posterior.mean(axis=0), strict=True)},
    )


# --------------------------------------------------------------------------- annotator quality


def annotator_confusion(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
    *,
    reference: Mapping[Hashable, Label],
) -> dict[Hashable, AnnotatorConfusion]:
    """Each annotator's labels against reference labels (consensus or gold).

    Parameters
    ----------
    items, annotators, labels, categories:
        As in :func:`item_agreement`.
    reference:
        item → reference label, each one of ``categories``. Items missing from it are
        skipped; reference items nobody labelled are ignored.

    Returns
    -------
    annotator → ``{"labels", "matrix", "accuracy", "n"}``: ``matrix`` is (k, k) counts,
    row = reference label, column = the annotator's label, both in ``labels`` (=
    ``categories``) order; ``n`` compared items; ``accuracy`` the share on the diagonal,
    None when ``n`` is 0. Every annotator of the table appears.
    """
    table = _table(items, annotators, labels, categories)
    k, n_annotators = table.k, len(table.annotator_ids)
    _, position = _categories(table.categories)
    ref_ids = [i for i in table.item_ids if i in reference]
    ref_code = _label_codes([_native(reference[i]) for i in ref_ids], position, "reference", "categories")
    ref_of_item = np.full(len(table.item_ids), -1, dtype=np.intp)
    item_index = {item_id: i for i, item_id in enumerate(table.item_ids)}
    ref_of_item[[item_index[i] for i in ref_ids]] = ref_code
    truth = ref_of_item[table.item]
    keep = truth >= 0
    flat = (table.annotator[keep] * k + truth[keep]) * k + table.label[keep]
    matrices = np.bincount(flat, minlength=n_annotators * k * k).reshape(n_annotators, k, k)
    out: dict[Hashable, AnnotatorConfusion] = {}
    for a, annotator_id in enumerate(table.annotator_ids):
        matrix = matrices[a]
        n = int(matrix.sum())
        out[annotator_id] = {
            "labels": list(table.categories),
            "matrix": matrix.tolist(),
            "accuracy": float(np.trace(matrix) / n) if n else None,
            "n": n,
        }
    return out


def annotator_accuracy(
    items: Sequence[Hashable],
    annotators: Sequence[Hashable],
    labels: Sequence[Label],
    categories: Sequence[Label],
    *,
    reference: Mapping[Hashable, Label],
) -> dict[Hashable, float | None]:
    """Annotator → share of their labels equal to ``reference`` (None if none compared).

    Shapes and arguments as in :func:`annotator_confusion`.
    """
    confusion = annotator_confusion(items, annotators, labels, categories, reference=reference)
    return {a: row["accuracy"] for a, row in confusion.items()}


# --------------------------------------------------------------------------- model vs consensus


def confident_disagreements(
    consensus: Mapping[Hashable, Label],
    proba: np.ndarray,
    item_ids: Sequence[Hashable],
    classes: Sequence[Label],
    *,
    threshold: float = 0.0,
) -> list[Disagreement]:
    """Items whose consensus label the model confidently contradicts (confident learning).

    Per-class thresholds follow cleanlab's confident joint: ``t_j`` is the mean
    predicted probability of class j over the items whose consensus is j (a class that
    is nobody's consensus gets 0.5), raised to at least ``threshold``. An item is
    flagged when, among the classes whose probability reaches their threshold (with
    cleanlab's 1e-6 slack), the most probable one is not its consensus label.

    Parameters
    ----------
    consensus:
        item → consensus (given) label, each one of ``classes``. Items of ``item_ids``
        missing from it are skipped.
    proba:
        Shape (n, k), the model's predicted probabilities, non-negative.
    item_ids:
        Shape (n,), the item of each row of ``proba``.
    classes:
        Shape (k,), the class of each column of ``proba``.
    threshold:
        Floor on every per-class threshold, in [0, 1]; 0 keeps the pure cleanlab rule,
        0.9 only flags predictions of at least 0.9.

    Returns
    -------
    ``{"item", "given", "predicted", "confidence", "margin"}`` per flagged item, sorted
    by ``margin`` (probability of the predicted class minus that of the given label),
    largest first; ``confidence`` is the probability of the predicted class.
    """
    proba = np.asarray(proba, dtype=np.float64)
    ids = _as_list(item_ids, "item_ids")
    cats, position = _categories(classes, "classes")
    if proba.ndim != 2 or proba.shape != (len(ids), len(cats)):
        raise ValueError(
            f"proba must have shape (len(item_ids), len(classes)) = ({len(ids)}, {len(cats)}), got {proba.shape}."
        )
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise ValueError("proba must hold finite, non-negative probabilities.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}.")
    if len(set(ids)) != len(ids):
        raise ValueError("item_ids holds duplicate items.")
    rows = [r for r, item_id in enumerate(ids) if item_id in consensus]
    given_values = [_native(consensus[ids[r]]) for r in rows]
    given = _label_codes(given_values, position, "consensus", "classes")
    rows_arr = np.asarray(rows, dtype=np.intp)
    p = proba[rows_arr]
    k = len(cats)
    thresholds = np.full(k, _UNSEEN_CLASS_THRESHOLD)
    for j in range(k):
        own = given == j
        if own.any():
            thresholds[j] = p[own, j].mean()
    thresholds = np.maximum(thresholds, threshold)
    confident = p >= thresholds - _CL_SLACK
    masked = np.where(confident, p, -np.inf)
    guess = masked.argmax(axis=1)
    flagged = confident.any(axis=1) & (guess != given)
    out: list[Disagreement] = []
    for r in np.flatnonzero(flagged):
        predicted, label = int(guess[r]), int(given[r])
        out.append(
            {
                "item": ids[rows[r]],
                "given": cats[label],
                "predicted": cats[predicted],
                "confidence": float(p[r, predicted]),
                "margin": float(p[r, predicted] - p[r, label]),
            }
        )
    out.sort(key=lambda row: -row["margin"])
    return out
