"""The wide Fashion-MNIST convnet: cached training, export with the BatchNorm reference pool, the demo row."""

import csv

import numpy as np
import pytest

from tests.cli import run_cli
from tests.converters.test_fashion import require_fashion
from tflite_fineprune import FinePruneError, Personalizer


def test_cache_name_holds_every_training_setting(tmp_path):
    from tflite_fineprune.converters.fashion_cnn import cached_model_path

    names = {cached_model_path(bn, tmp_path, epochs, widths, 256, limit).name
             for bn in (True, False) for epochs in (1, 2) for widths in ((64, 128, 128), (8, 16, 16))
             for limit in (None, 3000)}
    assert len(names) == 16 and all(name.endswith(".keras") for name in names)
    assert cached_model_path(True, tmp_path).parent == tmp_path


def test_missing_data_is_explained_before_any_training(tmp_path):
    from tflite_fineprune.converters.fashion_cnn import trained_fashion_cnn

    with pytest.raises(FinePruneError, match="apt-get install dataset-fashion-mnist"):
        trained_fashion_cnn(True, cache_dir=tmp_path, root=tmp_path / "nowhere", limit=10)
    assert not list(tmp_path.glob("*.keras"))  # nothing half-written in the cache


def test_demo_without_data_says_where_to_get_it(tmp_path):
    result = run_cli("demo", "--fashion-cnn", "--data", tmp_path, "--out", tmp_path / "out", timeout=300)
    assert result.returncode == 2 and "apt-get install dataset-fashion-mnist" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing trained or written before the data is found


@pytest.mark.slow
def test_small_convnet_is_cached_and_exports_with_batchnorm(tmp_path):
    require_fashion()
    from tflite_fineprune.converters.fashion import FASHION_LABELS, load_fashion_mnist
    from tflite_fineprune.converters.fashion_cnn import cached_model_path, reference_images, trained_fashion_cnn
    from tflite_fineprune import export_model

    settings = dict(cache_dir=tmp_path, epochs=1, widths=(8, 16, 16), dense=32, limit=6000, verbose=0)
    model, accuracy = trained_fashion_cnn(True, **settings)
    # Above chance (0.1), no more: BN's moving statistics need more steps than a test affords (the full
    # training reaches 0.90, docs/personalization.md).
    assert accuracy > 0.2 and cached_model_path(True, **{k: v for k, v in settings.items() if k != "verbose"}).exists()
    again, cached_accuracy = trained_fashion_cnn(True, **settings)
    assert cached_accuracy is None  # loaded, not trained again
    x, _ = load_fashion_mnist("test")
    np.testing.assert_allclose(np.asarray(again(x[:32])), np.asarray(model(x[:32])), atol=1e-6)
    report = export_model(again, tmp_path / "cnn.tflite", labels=FASHION_LABELS,
                          reference_data=reference_images(count=100), prune_outputs=True)
    personalizer = Personalizer(report.path)
    assert [g.name for g in personalizer.metadata.hidden_groups] == ["conv1", "conv2", "conv3", "hidden"]
    assert len(personalizer.metadata.normalization_layers) == 3
    np.testing.assert_allclose(personalizer.predict(x[:64]), np.asarray(model(x[:64])), atol=1e-4)


@pytest.mark.slow
def test_fashion_cnn_demo_prints_the_row(tmp_path):
    """The demo trains (or loads the cached) convnet and personalizes its 15 users; `auto` helps on average."""
    require_fashion()
    result = run_cli("demo", "--fashion-cnn", "--out", tmp_path, timeout=3600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "median user's slim file" in result.stdout
    with open(tmp_path / "fashion_cnn_users.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["recipe"] == "auto (default)"]
    assert len(rows) == 15
    assert np.mean([float(r["accuracy"]) for r in rows]) > np.mean([float(r["dense_accuracy"]) for r in rows])
