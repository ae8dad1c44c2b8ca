"""scikit-learn's estimator checks on the single-array (diagonal) mode.

The checks generate 1-D class or regression targets, whereas MTLMAnnotator
takes an (n, M) 0/1 label matrix and rejects anything else. They are run
through ``OneHotTargets``, a thin test adapter that one-hot encodes a 1-D class
target into a label matrix (one label per class, one label per image) before
calling the real ``fit``; everything else is the estimator itself.
"""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from mtlm import MTLMAnnotator


def _one_hot(Y, n_labels=None):
    Y = np.asarray(Y) if Y is not None else None
    if Y is not None and Y.ndim == 2 and Y.shape[1] == 1:
        Y = Y[:, 0]
    if Y is not None and Y.ndim == 1:
        if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
            raise ValueError("Y contains NaN or inf")
        _, codes = np.unique(Y, return_inverse=True)
        width = n_labels or max(codes.max() + 1, 2)
        Y = np.eye(width, dtype=np.uint8)[np.minimum(codes, width - 1)]
    return Y


class OneHotTargets(MTLMAnnotator):
    def fit(self, X, y):
        return super().fit(X, _one_hot(y))

    def score(self, X, y):
        return super().score(X, _one_hot(y, self.n_labels_in_))


# Checks that cannot apply, with the reason.
EXPECTED_FAILED = {
    "check_dtype_object": (
        "it wants a TypeError for a dict inside an object array; mtlm raises the "
        "ValueError naming the argument that every bad input gets"
    ),
}


@parametrize_with_checks(
    [
        OneHotTargets(tau=1.0, random_state=0),
        OneHotTargets(tau=1.0, random_state=0, probability=True),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_multi_output_tags():
    tags = MTLMAnnotator().__sklearn_tags__()
    assert tags.target_tags.multi_output and not tags.target_tags.single_output
    assert tags.target_tags.required


def test_y_none_message():
    with pytest.raises(ValueError, match="requires y to be passed"):
        MTLMAnnotator().fit(np.ones((4, 2)), None)
