"""Tests for `ml.agreement`, checked against scikit-learn, statsmodels, krippendorff and
crowd-kit on random and edge-case annotation tables."""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from ml.agreement import (
    annotator_accuracy,
    annotator_confusion,
    cohen_kappa_pairs,
    confident_disagreements,
    dawid_skene,
    fleiss_kappa,
    item_agreement,
    krippendorff_alpha_nominal,
    majority_vote,
)

# crowd-kit 1.4.2 uses pandas keywords that pandas 3 deprecates; not our code.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:crowdkit\..*")

# Taxonomy order on purpose not alphabetical, so ties are told apart from sorting.
CATS = ["violence", "nsfw", "neutral", "drugs"]


def simulate(
    seed: int,
    n_items: int = 60,
    n_annotators: int = 5,
    categories: list = CATS,
    raters: tuple[int, int] = (1, 5),
    accuracy: float = 0.7,
    used: int | None = None,
) -> tuple[list, list, list]:
    """Noisy annotations: each item gets a random subset of annotators, of a size drawn
    from `raters`; labels are the true one with probability `accuracy`. Only the first
    `used` categories are ever drawn (default all)."""
    rng = np.random.default_rng(seed)
    pool = categories[: used or len(categories)]
    items, annotators, labels = [], [], []
    for i in range(n_items):
        truth = rng.integers(len(pool))
        size = rng.integers(raters[0], raters[1] + 1)
        for a in rng.choice(n_annotators, size=min(size, n_annotators), replace=False):
            correct = rng.random() < accuracy
            items.append(f"img-{i}")
            annotators.append(f"user-{a}")
            labels.append(pool[truth] if correct else pool[rng.integers(len(pool))])
    return items, annotators, labels


def reliability(items, annotators, labels, categories) -> np.ndarray:
    """Shape (annotators, items): category index, nan where not rated (krippendorff)."""
    item_ids, ann_ids = list(dict.fromkeys(items)), list(dict.fromkeys(annotators))
    data = np.full((len(ann_ids), len(item_ids)), np.nan)
    for item, ann, label in zip(items, annotators, labels, strict=True):
        data[ann_ids.index(ann), item_ids.index(item)] = categories.index(label)
    return data


def count_table(items, labels, categories) -> np.ndarray:
    """Shape (items, categories) in first-appearance order of items."""
    item_ids = list(dict.fromkeys(items))
    table = np.zeros((len(item_ids), len(categories)), dtype=int)
    for item, label in zip(items, labels, strict=True):
        table[item_ids.index(item), categories.index(label)] += 1
    return table


def reference_alpha(data: np.ndarray) -> float | None:
    try:
        value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    except ValueError:  # fewer than two values, or no unit rated twice
        return None
    return None if math.isnan(value) else float(value)


def reference_fleiss(table: np.ndarray) -> float | None:
    with np.errstate(divide="ignore", invalid="ignore"):
        value = sm_fleiss_kappa(table)
    return None if math.isnan(value) else float(value)


def assert_close(actual: float | None, expected: float | None, tol: float = 1e-9) -> None:
    if expected is None:
        assert actual is None
    else:
        assert actual is not None and actual == pytest.approx(expected, abs=tol)


# --------------------------------------------------------------------------- per item


def test_item_agreement_by_hand():
    items = ["a", "a", "a", "b", "b", "c", "c", "c", "c"]
    annotators = ["u1", "u2", "u3", "u1", "u2", "u1", "u2", "u3", "u4"]
    labels = ["nsfw", "nsfw", "drugs", "drugs", "nsfw", "neutral", "neutral", "drugs", "drugs"]
    result = item_agreement(items, annotators, labels, CATS)

    assert list(result) == ["a", "b", "c"]
    assert result["a"] == {
        "n": 3,
        "agreement": pytest.approx(2 / 3),
        "entropy": pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3)),
        "majority": "nsfw",
        "counts": {"nsfw": 2, "drugs": 1},
    }
    # Ties go to the category earliest in CATS, not the alphabetically first one.
    assert result["b"]["majority"] == "nsfw" and result["b"]["agreement"] == 0.5
    assert result["b"]["entropy"] == pytest.approx(1.0)
    assert result["c"]["majority"] == "neutral"
    assert list(result["c"]["counts"]) == ["neutral", "drugs"]
    assert majority_vote(items, annotators, labels, CATS) == {
        "a": "nsfw",
        "b": "nsfw",
        "c": "neutral",
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_item_agreement_matches_brute_force(seed):
    items, annotators, labels = simulate(seed)
    result = item_agreement(items, annotators, labels, CATS)
    by_item: dict[str, list] = {}
    for item, label in zip(items, labels, strict=True):
        by_item.setdefault(item, []).append(label)
    assert list(result) == list(by_item)
    for item, given in by_item.items():
        counts = Counter(given)
        top = max(counts.values())
        majority = next(c for c in CATS if counts.get(c) == top)
        probs = np.array(list(counts.values())) / len(given)
        row = result[item]
        assert row["n"] == len(given) and row["majority"] == majority
        assert row["counts"] == dict(counts)
        assert row["agreement"] == pytest.approx(top / len(given))
        assert row["entropy"] == pytest.approx(float(-(probs * np.log2(probs)).sum()))


def test_unanimous_items_have_full_agreement_and_zero_entropy():
    items, annotators, labels = simulate(3, accuracy=1.0, raters=(2, 4))
    for row in item_agreement(items, annotators, labels, CATS).values():
        assert row["agreement"] == 1.0 and row["entropy"] == 0.0


# --------------------------------------------------------------------------- Cohen


@pytest.mark.parametrize(("seed", "accuracy"), [(0, 0.7), (1, 0.4), (2, 0.95)])
def test_cohen_kappa_pairs_match_sklearn(seed, accuracy):
    items, annotators, labels = simulate(seed, n_items=80, n_annotators=6, accuracy=accuracy)
    pairs = cohen_kappa_pairs(items, annotators, labels, CATS)

    rated: dict[str, dict[str, str]] = {}
    for item, ann, label in zip(items, annotators, labels, strict=True):
        rated.setdefault(ann, {})[item] = label
    order = list(dict.fromkeys(annotators))
    expected = {}
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            common = [item for item in rated[a] if item in rated[b]]
            if len(common) >= 2:
                y_a = [rated[a][item] for item in common]
                y_b = [rated[b][item] for item in common]
                expected[(a, b)] = (len(common), cohen_kappa_score(y_a, y_b))
    assert [(p["a"], p["b"]) for p in pairs] == list(expected)
    for pair in pairs:
        n_common, kappa = expected[(pair["a"], pair["b"])]
        assert pair["n_common"] == n_common
        assert pair["kappa"] == pytest.approx(kappa, abs=1e-12)


def test_cohen_kappa_edge_cases_two_annotators():
    def kappa(labels_a, labels_b):
        n = len(labels_a)
        items = [*range(n), *range(n)]
        pairs = cohen_kappa_pairs(items, ["a"] * n + ["b"] * n, [*labels_a, *labels_b], CATS)
        assert len(pairs) == 1 and pairs[0]["n_common"] == n
        return pairs[0]["kappa"]

    perfect = ["nsfw", "drugs", "nsfw", "neutral"]
    assert kappa(perfect, perfect) == 1.0
    # Total disagreement between two balanced annotators: below chance.
    opposite = (["nsfw", "drugs", "nsfw", "drugs"], ["drugs", "nsfw", "drugs", "nsfw"])
    assert kappa(*opposite) == pytest.approx(cohen_kappa_score(*opposite)) == -1.0
    # Both constant on the same label: kappa undefined (sklearn warns and gives nan).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(cohen_kappa_score(["nsfw"] * 3, ["nsfw"] * 3))
    assert kappa(["nsfw"] * 3, ["nsfw"] * 3) is None
    # Both constant on different labels: defined, and 0.
    constant = (["nsfw"] * 3, ["drugs"] * 3)
    assert kappa(*constant) == pytest.approx(cohen_kappa_score(*constant)) == 0.0


def test_cohen_kappa_skips_pairs_with_fewer_than_two_common_items():
    items = ["x", "x", "y", "y", "z", "z"]
    annotators = ["a", "b", "a", "b", "a", "c"]
    labels = ["nsfw", "nsfw", "drugs", "nsfw", "neutral", "neutral"]
    pairs = cohen_kappa_pairs(items, annotators, labels, CATS)
    assert [(p["a"], p["b"], p["n_common"]) for p in pairs] == [("a", "b", 2)]
    assert len(cohen_kappa_pairs(items, annotators, labels, CATS, min_common=1)) == 2


# --------------------------------------------------------------------------- Fleiss


@pytest.mark.parametrize(("seed", "used"), [(0, None), (1, None), (2, 3)])
def test_fleiss_kappa_matches_statsmodels(seed, used):
    # Three raters per item from a pool of 6; with used=3 the last category is never used.
    items, annotators, labels = simulate(seed, n_items=70, n_annotators=6, raters=(3, 3), used=used)
    result = fleiss_kappa(items, annotators, labels, CATS)

    wide = np.array([[CATS.index(lab) for lab in labels[i : i + 3]] for i in range(0, len(labels), 3)])
    table, _ = aggregate_raters(wide, n_cat=len(CATS))
    assert result["n_items"] == 70 and result["n_raters"] == 3 and result["n_items_excluded"] == 0
    assert_close(result["kappa"], float(sm_fleiss_kappa(table)))
    for c, category in enumerate(CATS):
        binary = np.stack([table[:, c], 3 - table[:, c]], axis=1)
        assert_close(result["per_category"][category], reference_fleiss(binary))
    if used:
        assert result["per_category"]["drugs"] is None


def test_fleiss_kappa_uses_items_with_the_most_common_rater_count():
    items, annotators, labels = simulate(4, n_items=90, raters=(2, 5))
    result = fleiss_kappa(items, annotators, labels, CATS)

    table = count_table(items, labels, CATS)
    raters = table.sum(axis=1)
    frequency = Counter(int(m) for m in raters if m >= 2)
    m = max(frequency, key=lambda r: (frequency[r], r))
    assert result["n_raters"] == m
    assert result["n_items"] == frequency[m]
    assert result["n_items_excluded"] == len(raters) - frequency[m]
    assert_close(result["kappa"], reference_fleiss(table[raters == m]))


def test_fleiss_kappa_rater_count_tie_goes_to_the_larger_count():
    items = ["a", "a", "b", "b", "c", "c", "c", "d", "d", "d", "e"]
    annotators = ["1", "2", "1", "2", "1", "2", "3", "1", "2", "3", "1"]
    labels = "nsfw nsfw drugs nsfw nsfw nsfw nsfw drugs drugs nsfw drugs".split()
    result = fleiss_kappa(items, annotators, labels, CATS)
    assert (result["n_raters"], result["n_items"], result["n_items_excluded"]) == (3, 2, 3)
    assert_close(result["kappa"], reference_fleiss(np.array([[0, 3, 0, 0], [0, 1, 0, 2]])))


def test_fleiss_kappa_edge_cases():
    two = ["u1", "u2"] * 4
    pairs = ["a", "a", "b", "b", "c", "c", "d", "d"]
    perfect = fleiss_kappa(pairs, two, ["nsfw", "nsfw", "drugs", "drugs"] * 2, CATS)
    assert perfect["kappa"] == 1.0
    assert perfect["per_category"] == {"violence": None, "nsfw": 1.0, "neutral": None, "drugs": 1.0}
    # Every pair disagrees: kappa at its minimum for two raters.
    split = fleiss_kappa(pairs, two, ["nsfw", "drugs"] * 4, CATS)
    assert split["kappa"] == pytest.approx(-1.0)
    # One category for everything: undefined (statsmodels divides 0 by 0).
    same = fleiss_kappa(pairs, two, ["nsfw"] * 8, CATS)
    assert same["kappa"] is None and reference_fleiss(np.array([[2, 0]] * 4)) is None
    # Nobody rated twice.
    alone = fleiss_kappa(["a", "b"], ["u1", "u1"], ["nsfw", "drugs"], CATS)
    assert alone == {
        "kappa": None,
        "n_items": 0,
        "n_raters": None,
        "n_items_excluded": 2,
        "per_category": dict.fromkeys(CATS),
    }


# --------------------------------------------------------------------------- Krippendorff


@pytest.mark.parametrize(("seed", "accuracy", "used"), [(0, 0.7, None), (1, 0.3, None), (2, 0.8, 2)])
def test_krippendorff_alpha_matches_reference_with_missing_values(seed, accuracy, used):
    items, annotators, labels = simulate(seed, n_items=80, n_annotators=7, accuracy=accuracy, used=used)
    result = krippendorff_alpha_nominal(items, annotators, labels, CATS)
    data = reliability(items, annotators, labels, CATS)
    assert np.isnan(data).any()  # items are rated by different subsets

    assert_close(result["alpha"], reference_alpha(data))
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    assert result["n_items"] == int(pairable.sum())
    assert result["n_pairable"] == int((~np.isnan(data[:, pairable])).sum())
    for c, category in enumerate(CATS):
        binary = np.where(np.isnan(data), np.nan, (data == c).astype(float))
        assert_close(result["per_category"][category], reference_alpha(binary))
    if used:
        assert result["per_category"]["neutral"] is None


def test_krippendorff_alpha_on_string_reliability_data():
    items, annotators, labels = simulate(5, n_items=40, n_annotators=4, raters=(2, 4))
    table = reliability(items, annotators, labels, CATS)
    as_strings = np.where(np.isnan(table), "nan", np.array(CATS)[np.nan_to_num(table).astype(int)])
    expected = krippendorff.alpha(reliability_data=as_strings, level_of_measurement="nominal")
    result = krippendorff_alpha_nominal(items, annotators, labels, CATS)
    assert result["alpha"] == pytest.approx(expected, abs=1e-9)


def test_krippendorff_alpha_edge_cases():
    annotators = ["u1", "u2", "u1", "u2", "u1", "u2", "u3"]
    items = ["a", "a", "b", "b", "c", "c", "d"]
    labels = "nsfw nsfw drugs drugs neutral neutral violence".split()
    perfect = krippendorff_alpha_nominal(items, annotators, labels, CATS)
    # "d" has one rating: not pairable, so its label cannot spoil the agreement.
    assert perfect["alpha"] == 1.0 and perfect["n_items"] == 3 and perfect["n_pairable"] == 6
    assert perfect["per_category"]["violence"] is None

    labels = ["nsfw", "drugs", "drugs", "nsfw", "neutral", "violence", "nsfw"]
    disagree = krippendorff_alpha_nominal(items, annotators, labels, CATS)
    data = reliability(items, annotators, labels, CATS)
    assert disagree["alpha"] < 0
    assert_close(disagree["alpha"], reference_alpha(data))

    same = krippendorff_alpha_nominal(items, annotators, ["nsfw"] * 7, CATS)
    assert same["alpha"] is None  # one value only: krippendorff raises
    lonely = krippendorff_alpha_nominal(["a", "b"], ["u1", "u2"], ["nsfw", "drugs"], CATS)
    assert lonely["alpha"] is None and lonely["n_items"] == 0


# --------------------------------------------------------------------------- Dawid-Skene


@pytest.fixture(scope="module")
def crowd() -> dict:
    """200 items, 6 classes, 5 annotators of accuracy 0.9 down to 0.5 with their own
    confusion patterns; each item labeled by 3 random annotators.

    The seed is one whose consensus is well determined: every item's top posterior
    leads the runner-up by more than 0.05 (checked below), and the labels no longer
    change between crowd-kit's early stop (about 10 iterations, when its evidence
    bound stalls) and full convergence. On near-tied data the two implementations can
    legitimately disagree through stopping rules alone."""
    rng = np.random.default_rng(1)
    k, n_items = 6, 200
    accuracies = [0.9, 0.8, 0.7, 0.6, 0.5]
    confusions = []
    for accuracy in accuracies:
        matrix = np.empty((k, k))
        for true in range(k):
            off = rng.dirichlet(np.full(k - 1, 0.5)) * (1 - accuracy)
            matrix[true] = np.insert(off, true, accuracy)
        confusions.append(matrix)
    truth = rng.integers(k, size=n_items)
    items, annotators, labels = [], [], []
    for i in range(n_items):
        for a in rng.choice(len(accuracies), size=3, replace=False):
            items.append(i)
            annotators.append(int(a))
            labels.append(int(rng.choice(k, p=confusions[a][truth[i]])))
    frame = pd.DataFrame({"task": items, "worker": annotators, "label": labels})
    return {
        "items": items,
        "annotators": annotators,
        "labels": labels,
        "categories": list(range(k)),
        "truth": truth,
        "frame": frame,
    }


def test_dawid_skene_matches_crowdkit_labels(crowd):
    args = crowd["items"], crowd["annotators"], crowd["labels"], crowd["categories"]
    ours = dawid_skene(*args, n_iter=100)
    model = DawidSkene(n_iter=100).fit(crowd["frame"])
    theirs = model.labels_.to_dict()

    # The answer is well determined: no item is close to a tie in our posteriors, and
    # stopping where crowd-kit stopped would not change any label.
    margins = [np.diff(sorted(p.values()))[-1] for p in ours.posteriors.values()]
    assert min(margins) > 0.05
    assert dawid_skene(*args, n_iter=len(model.loss_history_)).labels == ours.labels
    assert ours.labels == theirs

    truth = crowd["truth"]
    mv = majority_vote(*args)
    ds_accuracy = np.mean([ours.labels[i] == truth[i] for i in range(len(truth))])
    mv_accuracy = np.mean([mv[i] == truth[i] for i in range(len(truth))])
    assert ds_accuracy > mv_accuracy


def test_dawid_skene_is_the_same_em_as_crowdkit(crowd):
    """Run for a fixed number of iterations, the posteriors and priors agree too."""
    args = crowd["items"], crowd["annotators"], crowd["labels"], crowd["categories"]
    ours = dawid_skene(*args, n_iter=8, tol=0.0)
    model = DawidSkene(n_iter=8, tol=-np.inf).fit(crowd["frame"])
    assert len(model.loss_history_) == 8
    categories = crowd["categories"]
    theirs = model.probas_[categories]  # crowd-kit's columns come in no fixed order
    for item, posterior in ours.posteriors.items():
        assert list(posterior.values()) == pytest.approx(theirs.loc[item].tolist(), abs=1e-8)
    assert list(ours.priors.values()) == pytest.approx(model.priors_[categories].tolist(), abs=1e-8)
    for annotator, matrix in ours.confusion.items():
        # crowd-kit stores P(observed | true) with observed labels as rows.
        errors = model.errors_.loc[annotator].reindex(index=categories, columns=categories)
        errors = errors.to_numpy().T
        used = ~np.isnan(errors)
        assert matrix[used] == pytest.approx(errors[used], abs=1e-8)


def test_dawid_skene_result_shapes_and_unused_category():
    items, annotators, labels = simulate(8, n_items=50, used=3, raters=(2, 4))
    result = dawid_skene(items, annotators, labels, CATS)
    assert set(result.labels) == set(items)
    assert set(result.confusion) == set(annotators)
    for matrix in result.confusion.values():
        assert matrix.shape == (4, 4)
        assert matrix.sum(axis=1) == pytest.approx(np.ones(4))
    for posterior in result.posteriors.values():
        assert list(posterior) == CATS
        assert sum(posterior.values()) == pytest.approx(1.0)
        assert posterior["drugs"] < 1e-6
    assert sum(result.priors.values()) == pytest.approx(1.0)
    assert "drugs" not in result.labels.values()
    json.dumps({"posteriors": result.posteriors, "priors": result.priors, "labels": result.labels})


def test_dawid_skene_on_unanimous_labels_keeps_them():
    items, annotators, labels = simulate(9, n_items=30, accuracy=1.0, raters=(2, 3))
    result = dawid_skene(items, annotators, labels, CATS)
    assert result.labels == majority_vote(items, annotators, labels, CATS)


def test_dawid_skene_validates_parameters():
    with pytest.raises(ValueError, match="n_iter"):
        dawid_skene(["a"], ["u"], ["nsfw"], CATS, n_iter=0)
    with pytest.raises(ValueError, match="tol"):
        dawid_skene(["a"], ["u"], ["nsfw"], CATS, tol=-1.0)
    empty = dawid_skene([], [], [], CATS)
    assert empty.labels == {} and empty.priors == dict.fromkeys(CATS, 0.25)


# --------------------------------------------------------------------------- annotator quality


def test_annotator_confusion_matches_sklearn():
    items, annotators, labels = simulate(10, n_items=60)
    reference = majority_vote(items, annotators, labels, CATS)
    del reference["img-0"]  # items without a reference are skipped
    result = annotator_confusion(items, annotators, labels, CATS, reference=reference)
    accuracy = annotator_accuracy(items, annotators, labels, CATS, reference=reference)

    assert list(result) == list(dict.fromkeys(annotators))
    for ann, row in result.items():
        rows = [
            (reference[item], label)
            for item, a, label in zip(items, annotators, labels, strict=True)
            if a == ann and item in reference
        ]
        y_ref, y_ann = zip(*rows, strict=True)
        assert row["labels"] == CATS
        assert row["matrix"] == confusion_matrix(y_ref, y_ann, labels=CATS).tolist()
        assert row["n"] == len(rows)
        assert row["accuracy"] == pytest.approx(np.mean(np.array(y_ref) == np.array(y_ann)))
        assert accuracy[ann] == row["accuracy"]


def test_annotator_confusion_without_reference_items_and_bad_reference():
    args = ["a", "a", "b"], ["u1", "u2", "u3"], ["nsfw", "drugs", "nsfw"], CATS
    result = annotator_confusion(*args, reference={"a": "nsfw", "zzz": "drugs"})
    assert result["u1"]["accuracy"] == 1.0 and result["u2"]["accuracy"] == 0.0
    assert result["u3"] == {"labels": CATS, "matrix": [[0] * 4] * 4, "accuracy": None, "n": 0}
    with pytest.raises(ValueError, match="reference"):
        annotator_confusion(*args, reference={"a": "spam"})


# --------------------------------------------------------------------------- confident learning


def test_confident_disagreements_find_planted_label_errors():
    rng = np.random.default_rng(11)
    n, k = 400, len(CATS)
    truth = rng.integers(k, size=n)
    # The model's probability of the true class spreads from unsure to sure; the rest
    # of the mass is split at random among the other classes.
    sure = rng.uniform(0.4, 1.0, size=n)
    proba = rng.dirichlet(np.ones(k - 1), size=n) * (1 - sure)[:, None]
    proba = np.insert(proba, 0, 0.0, axis=1)
    for i in range(n):
        proba[i] = np.roll(proba[i], truth[i])
    proba[np.arange(n), truth] = sure
    item_ids = [f"img-{i}" for i in range(n)]
    consensus = {item: CATS[t] for item, t in zip(item_ids, truth, strict=True)}

    # Annotators got 20 obvious items wrong (the model is sure) and 20 hard ones.
    obvious = rng.choice(np.flatnonzero(sure > 0.9), size=20, replace=False)
    hard = rng.choice(np.flatnonzero(sure < 0.5), size=20, replace=False)
    for i in [*obvious, *hard]:
        consensus[item_ids[i]] = CATS[(truth[i] + rng.integers(1, k)) % k]

    flagged = confident_disagreements(consensus, proba, item_ids, CATS)
    found = {row["item"] for row in flagged}
    assert {item_ids[i] for i in obvious} <= found
    assert not found & {item_ids[i] for i in hard}  # the model is not confident there
    clean = set(item_ids) - {item_ids[i] for i in [*obvious, *hard]}
    assert len(found & clean) <= 0.05 * len(clean)

    margins = [row["margin"] for row in flagged]
    assert margins == sorted(margins, reverse=True)
    for row in flagged:
        i = item_ids.index(row["item"])
        assert row["given"] == consensus[row["item"]] != row["predicted"]
        assert row["confidence"] == proba[i, CATS.index(row["predicted"])]
        assert row["margin"] == pytest.approx(row["confidence"] - proba[i, CATS.index(row["given"])])
    json.dumps(flagged)

    strict = confident_disagreements(consensus, proba, item_ids, CATS, threshold=0.95)
    assert {r["item"] for r in strict} < found
    assert all(r["confidence"] >= 0.95 - 1e-6 for r in strict)


def test_confident_disagreements_uses_per_class_thresholds():
    classes = ["nsfw", "neutral"]
    # nsfw items get low nsfw probabilities (threshold 0.3); neutral ones high (0.9).
    proba = np.array([[0.3, 0.7], [0.3, 0.7], [0.1, 0.9], [0.1, 0.9], [0.35, 0.65], [0.05, 0.95]])
    ids = ["n1", "n2", "o1", "o2", "x", "y"]
    consensus = dict(zip(ids, "nsfw nsfw neutral neutral neutral nsfw".split(), strict=True))
    flagged = {row["item"]: row for row in confident_disagreements(consensus, proba, ids, classes)}
    # x: labelled neutral at 0.65 < t_neutral, and 0.35 >= t_nsfw: the model says nsfw.
    # y: labelled nsfw at 0.05 < t_nsfw; neutral at 0.95 >= t_neutral.
    assert set(flagged) == {"x", "y"}
    assert flagged["x"]["predicted"] == "nsfw" and flagged["y"]["predicted"] == "neutral"
    assert list(flagged) == ["y", "x"]  # larger margin first


def test_confident_disagreements_validation():
    proba = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="proba"):
        confident_disagreements({}, proba, ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="consensus"):
        confident_disagreements({"a": "z"}, proba, ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="threshold"):
        confident_disagreements({}, proba, ["a", "b"], ["x", "y"], threshold=2.0)
    assert confident_disagreements({}, proba, ["a", "b"], ["x", "y"]) == []


# --------------------------------------------------------------------------- validation & output


@pytest.mark.parametrize(
    "function",
    [item_agreement, majority_vote, cohen_kappa_pairs, fleiss_kappa, krippendorff_alpha_nominal] + [dawid_skene],
)
def test_input_validation(function):
    with pytest.raises(ValueError, match="annotators"):
        function(["a", "b"], ["u1"], ["nsfw", "nsfw"], CATS)
    with pytest.raises(ValueError, match="labels"):
        function(["a", "b"], ["u1", "u2"], ["nsfw"], CATS)
    with pytest.raises(ValueError, match="labels.*'spam'"):
        function(["a", "b"], ["u1", "u2"], ["nsfw", "spam"], CATS)
    with pytest.raises(ValueError, match="categories"):
        function(["a"], ["u1"], ["nsfw"], ["nsfw", "nsfw"])
    with pytest.raises(ValueError, match="repeat a pair"):
        function(["a", "a"], ["u1", "u1"], ["nsfw", "drugs"], CATS)
    with pytest.raises(ValueError, match="items must be 1-D"):
        function(np.zeros((2, 1)), ["u1", "u2"], ["nsfw", "nsfw"], CATS)


def test_numpy_inputs_give_json_friendly_python_values():
    rng = np.random.default_rng(12)
    items = np.repeat(np.arange(10), 3)
    annotators = np.tile(np.arange(3), 10)
    labels = rng.integers(3, size=30)
    categories = np.arange(4)
    outputs = {
        "agreement": item_agreement(items, annotators, labels, categories),
        "majority": majority_vote(items, annotators, labels, categories),
        "pairs": cohen_kappa_pairs(items, annotators, labels, categories),
        "fleiss": fleiss_kappa(items, annotators, labels, categories),
        "alpha": krippendorff_alpha_nominal(items, annotators, labels, categories),
        "confusion": annotator_confusion(items, annotators, labels, categories, reference={0: np.int64(1)}),
    }
    text = json.dumps(outputs)  # raises on numpy scalars
    assert text
    assert type(next(iter(outputs["majority"]))) is int
    assert all(type(v) is int for v in outputs["majority"].values())
    assert type(outputs["pairs"][0]["a"]) is int


def test_empty_input():
    assert item_agreement([], [], [], CATS) == {}
    assert majority_vote([], [], [], CATS) == {}
    assert cohen_kappa_pairs([], [], [], CATS) == []
    assert fleiss_kappa([], [], [], CATS)["kappa"] is None
    assert krippendorff_alpha_nominal([], [], [], CATS)["alpha"] is None
    assert annotator_accuracy([], [], [], CATS, reference={}) == {}
