"""The linear classification head trained on frozen image embeddings.

`LinearHead` is a scikit-learn classifier: embeddings are centred by the training mean
and L2-normalised, then a class-balanced multinomial logistic regression is fitted. Its
regularisation strength is chosen by stratified cross-validation once every class has
enough labels, and its probabilities are calibrated once every class has enough labels
for the calibration folds. With fewer labels both steps fall back to plain defaults, so
the head is usable from the very first labeling round.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, Self

import joblib
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

ISOTONIC_MIN_SAMPLES = 1000
"""Training-set size from which isotonic calibration replaces sigmoid (Platt) scaling.

The calibrator sees one out-of-fold prediction per training sample; isotonic regression
overfits well below about a thousand of them (scikit-learn's calibration guide).
"""

_NORM_EPS = 1e-12
_PROBA_EPS = 1e-15

Calibration = Literal["none", "sigmoid", "isotonic"]


class LinearHead(ClassifierMixin, BaseEstimator):
    """Class-balanced, calibrated logistic regression over embeddings.

    Parameters
    ----------
    C:
        Inverse L2 regularisation strength. ``None`` chooses it from `Cs` by stratified
        cross-validation when every class has at least `min_per_class_for_cv` labels,
        and uses 1.0 otherwise.
    Cs:
        Candidate values of C for the cross-validated choice.
    min_per_class_for_cv:
        Smallest per-class label count for which C is cross-validated.
    cv:
        Number of stratified folds, both for choosing C (capped by the smallest class
        count) and for calibration.
    calibrate:
        Whether to calibrate probabilities. Calibration only happens when every class
        has at least `cv` labels, so that every fold holds every class; otherwise the
        raw logistic-regression probabilities are used. Method: sigmoid (Platt) below
        `ISOTONIC_MIN_SAMPLES` training samples, isotonic from there on. The calibrator
        is fitted on out-of-fold scores from `cv` stratified folds and then applied to
        the regression fitted on all data (``CalibratedClassifierCV(ensemble=False)``).
        It is fitted without class weights, so calibrated probabilities estimate real
        class frequencies and `predict` leans back toward frequent classes compared
        with the balanced regression alone.
    max_iter:
        Iteration limit of the lbfgs solver.
    random_state:
        Seed for the fold shuffles.

    Attributes
    ----------
    classes_:
        Class labels, sorted, shape (k,).
    n_features_in_:
        Embedding dimension d seen in `fit`.
    mean_:
        Training mean subtracted before normalisation, shape (d,).
    C_:
        Regularisation strength actually used.
    cv_scores_:
        Mean class-balanced validation log-loss of each candidate in `Cs` (lower is
        better), shape (len(Cs),); ``None`` when C was not cross-validated.
    coef_, intercept_:
        Logistic-regression weights over centred, L2-normalised embeddings, shape
        (1, d) and (1,) for two classes, (k, d) and (k,) otherwise (as in
        `LogisticRegression`).
    calibration_:
        ``"none"``, ``"sigmoid"`` or ``"isotonic"``: how `predict_proba` was calibrated.
    n_iter_:
        Solver iterations of `estimator_`, shape (1,).
    estimator_:
        The logistic regression fitted on all training data.
    calibrator_:
        The fitted `CalibratedClassifierCV`, or ``None`` when ``calibration_ == "none"``.
    """

    def __init__(
        self,
        C: float | None = None,
        Cs: Sequence[float] = (0.01, 0.1, 1, 10, 100),
        min_per_class_for_cv: int = 5,
        cv: int = 5,
        calibrate: bool = True,
        max_iter: int = 2000,
        random_state: int | None = 0,
    ) -> None:
        self.C = C
        self.Cs = Cs
        self.min_per_class_for_cv = min_per_class_for_cv
        self.cv = cv
        self.calibrate = calibrate
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit the head, replacing any state from an earlier fit.

        Parameters
        ----------
        X:
            Embeddings, shape (n, d), numeric.
        y:
            Labels, shape (n,); strings or integers, at least two distinct values.

        Returns
        -------
        self
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, counts = np.unique(y, return_counts=True)
        if classes.size < 2:
            raise ValueError(
                f"y has {classes.size} class ({classes.tolist()}); LinearHead needs labels of at least 2 classes."
            )
        self.classes_ = classes
        self.mean_ = X.mean(axis=0)
        Z = self._normalise(X)
        min_count = int(counts.min())

        self.cv_scores_: np.ndarray | None = None
        if self.C is not None:
            self.C_ = float(self.C)
        elif min_count >= self.min_per_class_for_cv:
            self.C_, self.cv_scores_ = self._select_C(Z, y, n_splits=min(self.cv, min_count))
        else:
            self.C_ = 1.0

        self.estimator_ = self._logistic_regression(self.C_).fit(Z, y)
        self.coef_ = self.estimator_.coef_
        self.intercept_ = self.estimator_.intercept_
        self.n_iter_ = self.estimator_.n_iter_

        self.calibrator_: CalibratedClassifierCV | None = None
        self.calibration_: Calibration = "none"
        if self.calibrate and min_count >= self.cv:
            self.calibration_ = "isotonic" if len(y) >= ISOTONIC_MIN_SAMPLES else "sigmoid"
            self.calibrator_ = CalibratedClassifierCV(
                clone(self.estimator_),
                method=self.calibration_,
                cv=self._folds(self.cv),
                ensemble=False,
            ).fit(Z, y)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-probabilities of `predict_proba`, so that `predict` is their arg-max.

        Calibration moves the decision boundary away from the class-balanced logistic
        regression's, so its raw scores (``Z @ coef_.T + intercept_``) may disagree with
        `predict`; these scores never do. Probabilities are clipped at 1e-15 first.

        Parameters
        ----------
        X:
            Embeddings, shape (n, d).

        Returns
        -------
        For two classes the log-odds of ``classes_[1]``, shape (n,), positive where it
        is predicted; otherwise log-probabilities, shape (n, k).
        """
        log_proba = np.log(np.clip(self.predict_proba(X), _PROBA_EPS, 1.0))
        if self.classes_.size == 2:
            return log_proba[:, 1] - log_proba[:, 0]
        return log_proba

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, calibrated when ``calibration_ != "none"``.

        Parameters
        ----------
        X:
            Embeddings, shape (n, d).

        Returns
        -------
        Probabilities of shape (n, k), columns in the order of `classes_`, rows summing
        to 1.
        """
        Z = self._transform(X)
        model = self.calibrator_ if self.calibrator_ is not None else self.estimator_
        return model.predict_proba(Z)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class under `predict_proba`.

        Parameters
        ----------
        X:
            Embeddings, shape (n, d).

        Returns
        -------
        Labels of shape (n,), drawn from `classes_`.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted head to `path` with joblib.

        The file is a pickle: load only files this application wrote, with the same
        scikit-learn version (scikit-learn warns on a version mismatch).
        """
        check_is_fitted(self)
        joblib.dump(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LinearHead:
        """Read a head written by `save`; its predictions are identical to the saved one's."""
        head = joblib.load(path)
        if not isinstance(head, cls):
            raise TypeError(f"{os.fspath(path)} holds a {type(head).__name__}, not a {cls.__name__}.")
        check_is_fitted(head)
        return head

    def _check_params(self) -> None:
        if self.C is not None and not self.C > 0:
            raise ValueError(f"C must be positive or None, got {self.C!r}.")
        if len(self.Cs) == 0 or any(not c > 0 for c in self.Cs):
            raise ValueError(f"Cs must be a non-empty sequence of positive numbers, got {self.Cs!r}.")
        if self.cv < 2:
            raise ValueError(f"cv must be at least 2, got {self.cv!r}.")
        if self.min_per_class_for_cv < 2:
            raise ValueError(f"min_per_class_for_cv must be at least 2, got {self.min_per_class_for_cv!r}.")

    def _logistic_regression(self, C: float) -> LogisticRegression:
        return LogisticRegression(C=C, class_weight="balanced", max_iter=self.max_iter)

    def _folds(self, n_splits: int) -> StratifiedKFold:
        return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)

    def _select_C(self, Z: np.ndarray, y: np.ndarray, n_splits: int) -> tuple[float, np.ndarray]:
        """Pick the candidate C with the lowest mean class-balanced validation log-loss.

        Log-loss rather than balanced accuracy because it is smooth in C on the small
        label sets of early rounds (accuracy ties often) and rewards the well-ranked
        probabilities that uncertainty sampling and calibration rely on. Each validation
        sample is weighted like ``class_weight="balanced"`` so every class counts
        equally, matching the training objective. Ties go to the smaller C.

        Returns
        -------
        The chosen C and the mean loss of each candidate, shape (len(Cs),).
        """
        Cs = [float(c) for c in self.Cs]
        losses = np.zeros((len(Cs), n_splits))
        for fold, (train, val) in enumerate(self._folds(n_splits).split(Z, y)):
            weights = compute_sample_weight("balanced", y[val])
            for i, C in enumerate(Cs):
                model = self._logistic_regression(C).fit(Z[train], y[train])
                proba = model.predict_proba(Z[val])
                losses[i, fold] = log_loss(y[val], proba, sample_weight=weights, labels=model.classes_)
        mean_losses = losses.mean(axis=1)
        order = np.lexsort((Cs, mean_losses))
        return Cs[int(order[0])], mean_losses

    def _normalise(self, X: np.ndarray) -> np.ndarray:
        centred = X - self.mean_
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        return centred / np.maximum(norms, _NORM_EPS)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._normalise(X)
