"""The released code's per-point mean targets: a point covered by many predictions weighs as much as
one covered by one; the argmax (what lifting reads) does not change."""

from __future__ import annotations

import numpy as np

from crossdistill.methods.partdistill import DistillConfig, Knowledge


def test_per_point_mean_targets_average_the_covering_predictions():
    # 3 points; predictions: (part 0, 0.8) on {0, 1}, (part 0, 0.6) on {0}, (part 1, 0.4) on {0, 2}
    k = Knowledge(np.array([0, 0, 1]), np.array([0.8, 0.6, 0.4], np.float32), np.zeros(3, np.int32),
                  np.array([0, 2, 3, 5]), np.array([0, 1, 0, 0, 2]), 4)
    summed = k.point_targets(2)
    np.testing.assert_allclose(summed[:3], [[1.4, 0.4], [0.8, 0.0], [0.0, 0.4]], rtol=1e-6)
    mean = k.point_targets(2, per_point_mean=True)
    np.testing.assert_allclose(mean[:3], [[1.4 / 3, 0.4 / 3], [0.8, 0.0], [0.0, 0.4]], rtol=1e-6)
    assert not mean[3].any()  # uncovered: no loss
    np.testing.assert_array_equal(summed[:3].argmax(1), mean[:3].argmax(1))
    assert DistillConfig(per_point_mean=True).to_dict()["per_point_mean"] is True
