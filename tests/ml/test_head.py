"""Contract and behaviour tests for `ml.head.LinearHead`."""

from __future__ import annotations

from collections.abc import Iterator

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from ml.head import ISOTONIC_MIN_SAMPLES, LinearHead

LABELS = np.array(["drugs", "neutral", "violence"])


def blobs(
    per_class: int | list[int], *, dim: int = 8, spread: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around well-separated centres, one per label in `LABELS`.

    Returns X of shape (n, dim) and string labels y of shape (n,), shuffled.
    """
    rng = np.random.default_rng(seed)
    counts = [per_class] * len(LABELS) if isinstance(per_class, int) else per_class
    centres = 4.0 * np.eye(dim)[: len(counts)] + 1.0
    X = np.concatenate([c + spread * rng.standard_normal((n, dim)) for c, n in zip(centres, counts, strict=True)])
    y = np.repeat(LABELS[: len(counts)], counts)
    order = rng.permutation(len(y))
    return X[order], y[order]


@pytest.fixture(scope="module", autouse=True)
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread: these fits are tiny, and on a shared machine OpenBLAS
    threads waiting for a busy core make them an order of magnitude slower."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def embed(head: LinearHead, X: np.ndarray) -> np.ndarray:
    """The centred, L2-normalised embeddings `head` feeds its logistic regression, (n, d)."""
    centred = X - head.mean_
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return blobs(30)


@pytest.fixture(scope="module")
def fitted(data: tuple[np.ndarray, np.ndarray]) -> LinearHead:
    return LinearHead().fit(*data)


@parametrize_with_checks([LinearHead(Cs=(0.1, 10.0), cv=3)])
def test_scikit_learn_estimator_checks(estimator: LinearHead, check) -> None:
    """scikit-learn's own contract suite (small Cs and cv keep it quick, paths intact)."""
    check(estimator)


def test_init_only_stores_params() -> None:
    head = LinearHead(C=-1.0, cv=0)
    assert head.get_params()["C"] == -1.0
    assert clone(head).get_params() == head.get_params()
    assert not [name for name in vars(head) if name.endswith("_")]


def test_fit_returns_self(data: tuple[np.ndarray, np.ndarray]) -> None:
    head = LinearHead(C=1.0)
    assert head.fit(*data) is head


def test_fitted_attributes(fitted: LinearHead, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    assert fitted.classes_.tolist() == LABELS.tolist()
    assert fitted.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(fitted.mean_, X.mean(axis=0))
    assert fitted.coef_.shape == (3, X.shape[1])
    assert fitted.intercept_.shape == (3,)


def test_unfitted_raises_not_fitted_error(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    head = LinearHead()
    for method in (head.predict, head.predict_proba, head.decision_function):
        with pytest.raises(NotFittedError):
            method(X)


def test_feature_count_mismatch_raises(fitted: LinearHead, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    for method in (fitted.predict, fitted.predict_proba, fitted.decision_function):
        with pytest.raises(ValueError, match="features"):
            method(X[:, :-1])


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((4, 2)), np.array(["a"] * 4), "y has 1 class"),
        (np.zeros(4), np.array(["a", "b"] * 2), "2D array"),
        (np.zeros((4, 2)), np.array(["a", "b", "a"]), "inconsistent numbers of samples"),
        (np.array([["x", "y"]] * 4), np.array(["a", "b"] * 2), "could not convert"),
    ],
)
def test_fit_rejects_bad_input(X: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LinearHead().fit(X, y)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"C": 0.0}, "C"),
        ({"Cs": ()}, "Cs"),
        ({"cv": 1}, "cv"),
        ({"min_per_class_for_cv": 1}, "min_per_class"),
    ],
)
def test_fit_rejects_bad_params(params: dict, name: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(ValueError, match=name):
        LinearHead(**params).fit(*data)


def test_refit_resets_state(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    head = LinearHead().fit(X, y)
    assert head.calibration_ == "sigmoid"
    assert head.cv_scores_ is not None

    X_small, y_small = blobs([3, 3], dim=5, seed=4)
    head.fit(X_small, y_small)
    assert head.classes_.tolist() == LABELS[:2].tolist()
    assert head.n_features_in_ == 5
    assert head.mean_.shape == (5,)
    assert head.C_ == 1.0
    assert head.cv_scores_ is None
    assert head.calibration_ == "none"
    assert head.calibrator_ is None
    assert head.predict_proba(X_small).shape == (6, 2)


def test_same_seed_same_result(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    first = LinearHead(random_state=3).fit(X, y)
    second = LinearHead(random_state=3).fit(X, y)
    assert first.C_ == second.C_
    np.testing.assert_array_equal(first.cv_scores_, second.cv_scores_)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_integer_labels() -> None:
    X, y = blobs(10)
    y_int = np.searchsorted(LABELS, y)
    head = LinearHead().fit(X, y_int)
    assert head.classes_.tolist() == [0, 1, 2]
    assert head.predict(X).dtype == y_int.dtype


def test_c_fixed_below_cv_threshold() -> None:
    X, y = blobs([4, 12, 12])
    head = LinearHead().fit(X, y)
    assert head.C_ == 1.0
    assert head.cv_scores_ is None


def test_c_cross_validated_once_every_class_has_enough() -> None:
    X, y = blobs([5, 12, 12])
    Cs = (0.03, 0.3, 3.0)
    head = LinearHead(Cs=Cs).fit(X, y)
    assert head.C_ in Cs
    assert head.cv_scores_.shape == (len(Cs),)
    assert head.C_ == Cs[int(np.argmin(head.cv_scores_))]


def test_explicit_c_skips_cross_validation(data: tuple[np.ndarray, np.ndarray]) -> None:
    head = LinearHead(C=0.5).fit(*data)
    assert head.C_ == 0.5
    assert head.cv_scores_ is None


def test_proba_rows_sum_to_one_and_match_predict(fitted: LinearHead) -> None:
    X, _ = blobs(15, seed=1)
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[proba.argmax(axis=1)])


def test_learns_separable_blobs(fitted: LinearHead) -> None:
    X_test, y_test = blobs(50, seed=7)
    assert fitted.score(X_test, y_test) >= 0.97


def test_decision_function_agrees_with_predict(fitted: LinearHead, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    scores = fitted.decision_function(X)
    assert scores.shape == (len(X), 3)
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[scores.argmax(axis=1)])
    two = np.isin(y, LABELS[:2])
    binary = LinearHead(calibrate=False).fit(X[two], y[two])
    scores = binary.decision_function(X[two])
    assert scores.shape == (int(two.sum()),)
    np.testing.assert_array_equal(binary.predict(X[two]), binary.classes_[(scores > 0).astype(int)])


def test_calibrated_path(fitted: LinearHead, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    assert fitted.calibration_ == "sigmoid"
    assert fitted.calibrator_ is not None
    proba = fitted.predict_proba(X)
    np.testing.assert_array_equal(proba, fitted.calibrator_.predict_proba(embed(fitted, X)))
    assert not np.allclose(proba, fitted.estimator_.predict_proba(embed(fitted, X)))


def test_raw_path_when_a_class_is_too_small_to_calibrate() -> None:
    X, y = blobs([4, 12, 12])
    head = LinearHead(cv=5).fit(X, y)
    assert head.calibration_ == "none"
    assert head.calibrator_ is None
    np.testing.assert_array_equal(head.predict_proba(X), head.estimator_.predict_proba(embed(head, X)))


def test_raw_path_when_calibration_is_off(data: tuple[np.ndarray, np.ndarray]) -> None:
    head = LinearHead(calibrate=False).fit(*data)
    assert head.calibration_ == "none"
    assert head.calibrator_ is None


def test_isotonic_from_enough_samples() -> None:
    X, y = blobs(ISOTONIC_MIN_SAMPLES // 3 + 1, dim=4, spread=1.5)
    head = LinearHead(C=1.0, cv=3).fit(X, y)
    assert head.calibration_ == "isotonic"
    np.testing.assert_allclose(head.predict_proba(X).sum(axis=1), 1.0)


def test_save_load_round_trip(fitted: LinearHead, tmp_path) -> None:
    X, _ = blobs(20, seed=2)
    path = tmp_path / "head.joblib"
    fitted.save(path)
    loaded = LinearHead.load(path)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.C_ == fitted.C_
    np.testing.assert_array_equal(loaded.classes_, fitted.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(loaded.decision_function(X), fitted.decision_function(X))
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


def test_save_unfitted_raises(tmp_path) -> None:
    with pytest.raises(NotFittedError):
        LinearHead().save(tmp_path / "head.joblib")


def test_load_rejects_other_objects(tmp_path) -> None:
    path = tmp_path / "other.joblib"
    joblib.dump({"coef_": [1.0]}, path)
    with pytest.raises(TypeError, match="dict"):
        LinearHead.load(path)
