"""Selection strategies: which unlabeled items moderators should label next.

Every strategy is a pure, deterministic function: arrays in, row indices out, randomness
only through ``random_state`` (passed to ``np.random.default_rng``).

Shapes and conventions used throughout:

- ``X``: embeddings, shape (n, d), float16, float32 or float64, usually L2-normalised.
  It may be an ``np.memmap``. It is never copied whole or converted whole to float64:
  the work happens on float32 blocks of rows.
- ``proba``: class probabilities from the current head, shape (n, k), rows summing to 1.
- ``labeled``, ``exclude``, ``candidates``: 1-D integer row indices into ``X``/``proba``.

Every strategy returns a 1-D int64 array of distinct row indices, most wanted first,
that never contains a ``labeled`` or ``exclude`` index and has length
``min(budget, number of rows available)``.

Modules, by concept: ``checks`` (array types, input checks), ``distances`` (blocked
distance kernels), ``baseline`` (random), ``kcenter`` (diversity), ``typicality``
(typicality and cluster prototypes), ``uncertainty``, ``balance``, ``combined``, and
``dispatch`` (:func:`select`, a strategy by name).
"""

from ml.selection.balance import balance
from ml.selection.baseline import random_selection
from ml.selection.checks import FloatArray, IndexArray, RandomState
from ml.selection.combined import combined
from ml.selection.dispatch import STRATEGIES, select
from ml.selection.kcenter import covering_radius, kcenter_greedy, kcenter_greedy_exact
from ml.selection.typicality import prototypes, typicality
from ml.selection.uncertainty import UNCERTAINTY_METHODS, UncertaintyMethod, uncertainty

__all__ = [
    "STRATEGIES",
    "UNCERTAINTY_METHODS",
    "FloatArray",
    "IndexArray",
    "RandomState",
    "UncertaintyMethod",
    "balance",
    "combined",
    "covering_radius",
    "kcenter_greedy",
    "kcenter_greedy_exact",
    "prototypes",
    "random_selection",
    "select",
    "typicality",
    "uncertainty",
]
