"""`evaluate_population` and `tflite-fineprune population` on the local engine: real exports, real image files.

Users come from generated PNG files (class folders `0`…`9`, each class its own colour plus noise), so these
tests run without the demo data; the Ray engine's tests (test_population_ray.py) reuse the helpers here.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests import cli
from tflite_fineprune import FinePruneError, evaluate_population
from tflite_fineprune.population import COLUMNS, parse_recipe
from tflite_fineprune.population.users import make_users, split_files, user_rng

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_images(folder, label, count, seed):
    """`count` 32×32 RGB PNGs of class `label` (a colour of its own plus noise) in `folder/<label>/`."""
    rng = np.random.default_rng(seed)
    target = folder / str(label)
    target.mkdir(parents=True, exist_ok=True)
    colour = np.array([(label * 70) % 256, (label * 130 + 40) % 256, (label * 200 + 90) % 256], np.float64)
    for n in range(count):
        pixels = np.clip(colour + rng.normal(0, 60, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(target / f"{n:04d}.png")


def class_folder(root, classes=10, per_class=30):
    """A labelled folder `root/<class>/<n>.png` for class-subset users."""
    for label in range(classes):
        write_images(root, label, per_class, seed=label)
    return root


def user_folders(root, users, per_label=4, labels=(0, 1, 2)):
    """`root/<user>/<label>/<n>.png` for `users` users."""
    for index in range(users):
        for label in labels:
            write_images(root / f"user{index:03d}", label, per_label, seed=1000 * index + label)
    return root


def model_path(exports):
    return exports.path("plain_cnn", prune_outputs=True)


def run_cli(*args, timeout=600):
    return cli.run_cli(*args, timeout=timeout, cwd=REPO)


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_recipe_grammar():
    assert parse_recipe("auto").rule is not None
    assert parse_recipe("auto:class_alpha=0.01,normalization_passes=1").rule.normalization_passes == 1
    assert parse_recipe("dense").steps == () and parse_recipe("dense").rule is None
    assert parse_recipe("prune:0.05+classes:0.1").steps == (("prune", 0.05), ("classes", 0.1))
    for bad, says in (("prune", "not a lever setting"), ("prune:1", "[0,1)"), ("classes:x", "[0,1]"),
                      ("auto:nope=1", "AutoRule fields"), ("auto:normalization_passes=0.5", "integer"),
                      ("", "a recipe is a name")):
        with pytest.raises(FinePruneError, match=says.replace("[", r"\[").replace(")", r"\)")):
            parse_recipe(bad)


def test_split_is_seeded_per_user_and_independent_of_the_others():
    items = [(f"f{i}", i % 3) for i in range(11)]
    first, _ = make_users([("a", items), ("b", items)], seed=7)
    alone, _ = make_users([("a", list(reversed(items)))], seed=7)
    assert first[0].adapt == alone[0].adapt and first[0].evaluate == alone[0].evaluate  # order of files: irrelevant
    assert len(first[0].adapt) == 6 and len(first[0].evaluate) == 5
    assert not set(first[0].adapt) & set(first[0].evaluate)
    assert first[0].adapt != first[1].adapt  # user 1 draws from its own generator
    adapt, _ = split_files(sorted(items), user_rng(7, 1))
    assert tuple(p for p, _ in adapt) == first[1].adapt
    other, _ = make_users([("a", items)], seed=8)
    assert other[0].adapt != first[0].adapt


def test_folder_users_with_a_broken_file_give_a_failed_row(exports, tmp_path, capsys):
    data = user_folders(tmp_path / "users", 4)
    (data / "user002" / "1" / "0001.png").write_bytes(b"not a png")
    result = evaluate_population(model_path(exports), "folders", data=data, recipes=["auto", "dense", "prune:0.1"],
                                 out=tmp_path / "out", progress=True)
    rows = read_rows(tmp_path / "out" / "users.csv")
    assert [r["user"] for r in rows] == [f"user{i:03d}" for i in range(4) for _ in range(3)]
    assert list(rows[0]) == list(COLUMNS)
    broken = [r for r in rows if r["user"] == "user002"]
    assert all("0001.png is not a readable image" in r["error"] and r["accuracy"] == "" for r in broken)
    assert all(r["error"] == "" and 0 <= float(r["accuracy"]) <= 1 for r in rows if r["user"] != "user002")
    assert "user user002 failed:" in capsys.readouterr().err
    assert result.info["failed_users"] == 1 and result.summary[0]["users"] == 3 and result.summary[0]["failed"] == 1
    prune = [r for r in rows if r["recipe"] == "prune:0.1" and not r["error"]]
    assert all(float(r["unit_sparsity"]) > 0 for r in prune)
    dense = [r for r in rows if r["recipe"] == "dense" and not r["error"]]
    assert all(r["accuracy"] == r["dense_accuracy"] for r in dense)


def test_outputs_summary_parquet_plot(exports, tmp_path):
    data = class_folder(tmp_path / "classes", per_class=12)
    out = tmp_path / "out"
    result = evaluate_population(model_path(exports), "class-subsets", data=data, count=6, per_class=8,
                                 class_subsets=(2, 3), others=10, out=out, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["users_count"] == 6 and summary["engine"] == "local"
    assert [s["recipe"] for s in summary["summary"]] == ["auto", "dense"]
    assert summary["summary"][1]["mean"] == pytest.approx(summary["summary"][1]["dense_mean"])
    assert (out / "gains.png").read_bytes()[:4] == b"\x89PNG"
    rows = read_rows(out / "users.csv")
    assert len(rows) == 12 and all(r["others"] != "" for r in rows)
    assert [r["user"].split(":")[0] for r in rows[::2]] == [f"u{i}-k{k}" for i, k in enumerate((2, 3) * 3)]
    before = (out / "users.csv").read_bytes()
    again = evaluate_population(model_path(exports), "class-subsets", data=data, count=6, per_class=8,
                                class_subsets=(2, 3), others=10, out=out, progress=False)
    assert again.info["users_resumed"] == 6 and again.info["users_evaluated_now"] == 0
    assert again.rows == result.rows and (out / "users.csv").read_bytes() == before
    pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
    table = pyarrow_parquet.read_table(out / "users.parquet").to_pylist()
    assert [r["accuracy"] for r in table] == [r["accuracy"] for r in result.rows]


def test_manifest_and_bad_inputs(exports, tmp_path):
    data = user_folders(tmp_path / "users", 2, per_label=3, labels=(0, 5))
    manifest = tmp_path / "list.csv"
    lines = ["path,user,label"] + [f"{p.relative_to(tmp_path)},{p.parts[-3]},{p.parts[-2]}"
                                   for p in sorted(data.rglob("*.png"))]
    manifest.write_text("\n".join(lines) + "\n")
    by_manifest = evaluate_population(model_path(exports), "manifest", manifest=manifest, recipes=["dense"],
                                      progress=False)
    by_folder = evaluate_population(model_path(exports), "folders", data=data, recipes=["dense"], progress=False)
    assert by_manifest.rows == by_folder.rows
    manifest.write_text("file,user,label\nx.png,a,0\n")
    for kwargs, says in (({"manifest": manifest}, "missing path"), ({}, "needs --manifest")):
        with pytest.raises(FinePruneError, match=says):
            evaluate_population(model_path(exports), "manifest", **kwargs)
    with pytest.raises(FinePruneError, match="workers apply to engine='ray'"):
        evaluate_population(model_path(exports), "folders", data=data, workers=2)
    evaluate_population(model_path(exports), "folders", data=data, recipes=["dense"], out=tmp_path / "o",
                        progress=False)
    result = run_cli("population", model_path(exports), "--data", data, "--users", "folders", "--seed", "3",
                     "-o", tmp_path / "o")
    assert result.returncode == 2 and "holds a run with other settings (recipes, seed differ)" in result.stderr


def test_no_ray_is_one_line_naming_the_extra(exports, tmp_path):
    data = user_folders(tmp_path / "users", 2)
    hide = ("import sys\nclass Hide:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'ray' or name.startswith('ray.'):\n            raise ImportError('hidden')\n"
            "sys.meta_path.insert(0, Hide())\nfrom tflite_fineprune.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", hide, "population", str(model_path(exports)), "--data", str(data),
                             "--users", "folders", "--engine", "ray", "-o", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "tflite-fineprune: error: the ray engine needs Ray, which is not installed: "
        "pip install 'tflite-fineprune[ray]'"]


def test_resume_after_sigint_equals_an_uninterrupted_run(exports, tmp_path):
    data = class_folder(tmp_path / "classes", per_class=20)
    args = ["-m", "tflite_fineprune", "population", str(model_path(exports)), "--data", str(data), "--users",
            "class-subsets", "--count", "120", "--per-class", "16", "--recipe", "auto", "--no-progress"]
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, *args, "-o", str(interrupted)], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (interrupted / "users.csv").exists() and len(read_rows(interrupted / "users.csv")) >= 10:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "the same command resumes from them" in err
    written = len(read_rows(interrupted / "users.csv"))
    assert 10 <= written < 120
    resumed = run_cli(*args[2:], "-o", interrupted)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{written} resumed from" in resumed.stdout
    whole = run_cli(*args[2:], "-o", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert (interrupted / "users.csv").read_bytes() == (tmp_path / "whole" / "users.csv").read_bytes()


def test_speaker_users_from_file_names(tmp_path):
    from tflite_fineprune.population.users import speaker_users

    labels = ["yes", "no", "_unknown_", "_silence_"]
    for label, names in (("yes", ["0a1b2c3d_nohash_0", "0a1b2c3d_nohash_1", "ffff0000_nohash_0"]),
                         ("no", ["0a1b2c3d_nohash_2", "ffff0000_nohash_1", "12345678_nohash_0"]),
                         ("_unknown_", ["bed_0a1b2c3d_nohash_0"]), ("_silence_", ["noise_0"])):
        (tmp_path / label).mkdir()
        for name in names:
            (tmp_path / label / f"{name}.wav").write_bytes(b"")  # listed, not read: workers read the files
    users, notes = speaker_users(tmp_path, labels, seed=0, min_files=2)
    assert [u.name for u in users] == ["0a1b2c3d", "ffff0000"] and [u.index for u in users] == [0, 1]
    assert len(users[0].adapt) == 2 and len(users[0].evaluate) == 2
    assert sorted(users[0].labels + tuple(labels.index(os.path.basename(os.path.dirname(p))) for p in users[0].adapt)
                  ) == [0, 0, 1, 2]
    assert "1 files name no speaker" in notes[0] and "left out 1 users with fewer than 2 files" in notes[1]


def test_the_summary_table_is_the_demos_table():
    from tflite_fineprune.converters.evaluation import format_summary as demo_format, summarize as demo_summarize
    from tflite_fineprune.population import format_summary, summarize

    rng = np.random.default_rng(0)
    rows = [{"user": f"u{i}", "recipe": recipe, "adapt": 10, "eval": 10, "dense_accuracy": dense,
             "accuracy": min(1.0, dense + gain), "dense_others": 0.7, "others": 0.6, "unit_sparsity": 0.1,
             "weight_sparsity": 0.2, "mac_sparsity": 0.3}
            for i, dense in enumerate(rng.uniform(0.3, 0.9, 23)) for recipe, gain in (("auto", 0.05), ("x", -0.1))]
    assert format_summary(summarize(rows)) == demo_format(demo_summarize(rows))


def test_in_memory_users_share_the_engine_with_users_on_disk(exports, tmp_path):
    """`converters.evaluation.evaluate_users` (the benchmarks' in-memory users) runs the engine's per-user code:
    its rows equal the population's rows for the same samples read from files, recipe by recipe."""
    from tflite_fineprune.converters.evaluation import User, evaluate_users
    from tflite_fineprune import Personalizer
    from tflite_fineprune.population import UserSpec
    from tflite_fineprune.population.worker import load_files

    data = user_folders(tmp_path / "users", 3, per_label=4)
    model = model_path(exports)
    personalizer = Personalizer(model)
    specs, in_memory = [], []
    for index, name in enumerate(sorted(os.listdir(data))):
        files = sorted(str(p) for p in (data / name).rglob("*.png"))
        adapt, evaluate = files[::2], files[1::2]
        labels = tuple(int(os.path.basename(os.path.dirname(p))) for p in evaluate)
        specs.append(UserSpec(index, name, tuple(adapt), tuple(evaluate), labels, seed=index))
        in_memory.append(User(name, load_files(adapt, personalizer, None)[0],
                              load_files(evaluate, personalizer, None)[0], np.array(labels)))
    recipes = [parse_recipe("auto"), parse_recipe("prune:0.2+classes:0.1"), parse_recipe("random:0.3")]
    on_disk = evaluate_population(model, specs, recipes=recipes, out=tmp_path / "disk", progress=False).rows
    rows = evaluate_users(personalizer, in_memory, recipes, others_per_user=0, seed=0, progress=False)
    assert len(rows) == len(on_disk) == 9
    for mine, theirs in zip(rows, on_disk):
        assert mine["user"] == theirs["user"] and mine["recipe"] == theirs["recipe"]
        for key in ("adapt", "eval", "dense_accuracy", "accuracy", "unit_sparsity", "weight_sparsity", "mac_sparsity"):
            assert float(mine[key]) == float(theirs[key]), (mine["user"], mine["recipe"], key)
    assert any(float(r["unit_sparsity"]) > 0 for r in rows)


def test_in_memory_users_raise_what_the_engine_would_write_as_a_failed_row(exports):
    from tflite_fineprune.converters.evaluation import Recipe, User, evaluate_users
    from tflite_fineprune import Personalizer

    personalizer = Personalizer(model_path(exports))
    shape = personalizer.metadata.input_shape[1:]
    user = User("u", np.zeros((4, *shape), np.float32), np.zeros((4, *shape), np.float32), np.zeros(4, np.int64))
    with pytest.raises(FinePruneError, match="sparsity"):
        evaluate_users(personalizer, [user], [Recipe("bad", sparsity=1.5)], others_per_user=0, progress=False)
