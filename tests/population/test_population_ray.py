"""The Ray engine: its rows equal the local engine's bit for bit (one Ray session for the module: start-up takes
5–25 s on a loaded 2-core machine)."""

import json

import pytest

from tests.population.test_population import class_folder, model_path, user_folders
from tflite_fineprune import evaluate_population

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'tflite-fineprune[ray]'")


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_rows_equal_local_rows_bit_for_bit(exports, tmp_path, ray_session):
    data = user_folders(tmp_path / "users", 52, per_label=3)
    (data / "user017" / "2" / "0000.png").write_bytes(b"\x89PNG broken")
    recipes = ["auto", "dense", "random:0.2", "prune:0.1+classes:0.2"]
    local = evaluate_population(model_path(exports), "folders", data=data, recipes=recipes, out=tmp_path / "local",
                                progress=False)
    distributed = evaluate_population(model_path(exports), "folders", data=data, recipes=recipes, engine="ray",
                                      workers=2, users_per_task=3, out=tmp_path / "ray", progress=False)
    assert (tmp_path / "ray" / "users.csv").read_bytes() == (tmp_path / "local" / "users.csv").read_bytes()
    assert distributed.rows == local.rows and len(local.rows) == 52 * len(recipes)
    assert [r["user"] for r in local.rows if r["error"]] == ["user017"] * len(recipes)
    info = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert info["engine"] == "ray" and info["workers"] == 2 and len(info["worker_peak_rss_mb"]) == 2
    # Batches sized by the engine from the measured cost give the same rows.
    sized = evaluate_population(model_path(exports), "folders", data=data, recipes=recipes, engine="ray", workers=2,
                                progress=False)
    assert sized.rows == local.rows


def test_ray_class_subset_users_made_on_demand_equal_local(exports, tmp_path, ray_session):
    data = class_folder(tmp_path / "classes", per_class=12)
    options = dict(data=data, count=14, per_class=6, class_subsets=(1, 4), others=5, recipes=["auto", "magnitude:0.2"],
                   progress=False, seed=11)
    local = evaluate_population(model_path(exports), "class-subsets", **options)
    distributed = evaluate_population(model_path(exports), "class-subsets", engine="ray", workers=2, **options)
    assert distributed.rows == local.rows and len(local.rows) == 28 and not any(r["error"] for r in local.rows)
