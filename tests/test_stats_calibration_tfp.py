"""The equal-width convention and the plug-in ECE of reportgen.stats.calibration against TensorFlow and TFP themselves.

A file of its own: importing TensorFlow takes several seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from reportgen.stats import calibration as C

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_equal_width_bins_are_tensorflows_histogram_bins():
    values = np.r_[[0.0, 0.2, 0.25, 0.5, 0.6, 0.7999999, 0.8, 0.93, 1.0, 1 / 3, 2 / 3, 14 / 15],
                   np.random.default_rng(0).random(2000)]
    for n_bins in (1, 5, 10, 15):
        expected = tf.histogram_fixed_width_bins(values, np.array([0.0, 1.0]), nbins=n_bins).numpy()
        np.testing.assert_array_equal(C.equal_width_bin(values, n_bins), expected)


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_plug_in_ece_equals_tfp_expected_calibration_error(n_bins):
    """BinSums.ece (float64 sums that add across shards) equals TFP's ECE over the same bins within its float32 rounding."""
    rng = np.random.default_rng(n_bins)
    probs = softmax(rng.normal(size=(3000, 10)) * 2.5)
    labels = np.minimum((rng.random(3000)[:, None] > np.cumsum(softmax(rng.normal(size=(3000, 10)) + np.log(probs)), axis=1))
                        .sum(axis=1), 9)
    predicted = probs.argmax(axis=1)
    ours = float(C.BinSums.of(probs.max(axis=1), predicted == labels, n_bins).ece())
    theirs = float(tfp.stats.expected_calibration_error(n_bins, logits=np.log(probs).astype(np.float32),
                                                         labels_true=labels.astype(np.int32),
                                                         labels_predicted=predicted.astype(np.int32)))
    assert ours > 0.01  # not a trivially calibrated case
    assert ours == pytest.approx(theirs, abs=2e-6)
