"""`activity_positions`: activity counted on a strided grid of positions, exact on small maps."""

import numpy as np
import pytest

from tests.realdata import real_inputs
from tflite_fineprune import Personalizer, export_model
from tflite_fineprune.errors import FinePruneError
from tflite_fineprune.export.activity import spatial_stride


@pytest.mark.parametrize("shape, positions, stride", [
    ((112, 112), 256, 7), ((56, 56), 256, 3), ((28, 28), 256, 1), ((32, 32), 256, 2), ((16000,), 256, 62),
    ((112, 112), 0, 1), ((7, 7), 256, 1),
])
def test_spatial_stride_keeps_at_least_the_asked_positions(shape, positions, stride):
    assert spatial_stride(shape, positions) == stride
    if positions and stride > 1:
        assert np.prod([-(-d // stride) for d in shape]) >= positions
        assert np.prod([-(-d // (stride + 1)) for d in shape]) < positions


def test_sampled_activity_is_close_to_exact_and_exact_on_small_maps(exports, tmp_path):
    x = real_inputs("plain_cnn", count=40)
    exact = Personalizer(exports.path("plain_cnn"))
    path = tmp_path / "sampled.tflite"
    report = export_model(exports.model("plain_cnn"), path, activity_positions=64)
    assert report.metadata.activity_positions == 64
    sampled = Personalizer(path)
    np.testing.assert_allclose(sampled.predict(x), exact.predict(x), atol=1e-6)  # infer is untouched
    exact.observe(x)
    sampled.observe(x)
    for group in exact.units:
        a, b = exact.activity[group.name], sampled.activity[group.name]
        if group.positions <= 64 or group.role == "output":
            np.testing.assert_allclose(b, a, atol=1e-6, err_msg=group.name)
        else:
            assert np.max(np.abs(a - b)) < 0.15, group.name
            assert not np.allclose(a, b, atol=1e-6), f"{group.name} was not sampled"


def test_negative_activity_positions_is_refused(exports, tmp_path):
    with pytest.raises(FinePruneError, match="activity_positions"):
        export_model(exports.model("plain_cnn"), tmp_path / "m.tflite", activity_positions=-1)
