"""benchmarks/cifar_large.py: its image split and its argument handling (training and personalizing never run here)."""

import importlib.util
import pathlib

import numpy as np
import pytest
from PIL import Image

from tflite_fineprune.demo_data import CIFAR10_TEST

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "cifar_large.py"
spec = importlib.util.spec_from_file_location("cifar_large", SCRIPT)
cifar_large = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cifar_large)


def test_training_images_are_never_a_users_or_the_reference_pools():
    parts = [set(cifar_large.REFERENCE), set(cifar_large.USERS), set(cifar_large.TRAIN)]
    assert sum(map(len, parts)) == 1000 and set.union(*parts) == set(range(1000))
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]


def _write_class(root, label, numbers):
    folder = root / CIFAR10_TEST / label
    folder.mkdir(parents=True)
    for n in numbers:  # the file number in the pixels: red = n % 250, green = 60 · (n // 250)
        Image.fromarray(np.full((32, 32, 3), (n % 250, 60 * (n // 250), 0), np.uint8)).save(folder / f"{n}.jpg")


def _numbers(images):
    red, green = images[:, 16, 16, 0].astype(int), images[:, 16, 16, 1].astype(int)
    return np.round(green / 60).astype(int) * 250 + red


def test_split_follows_the_file_number_not_the_file_name_order(tmp_path):
    _write_class(tmp_path, "airplane", range(1000))
    split = cifar_large.load_cifar_split(tmp_path, labels=("airplane",))
    for part, numbers in (("reference", cifar_large.REFERENCE), ("users", cifar_large.USERS),
                          ("train", cifar_large.TRAIN)):
        (images,) = split[part]
        assert images.shape == (len(numbers), 32, 32, 3) and images.dtype == np.uint8
        assert np.max(np.abs(_numbers(images) - np.array(numbers))) <= 2  # JPEG rounding


def test_missing_images_are_named(tmp_path):
    _write_class(tmp_path, "airplane", [n for n in range(1000) if n != 150])
    with pytest.raises(SystemExit, match="missing 1 .first 150.jpg"):
        cifar_large.load_cifar_split(tmp_path, labels=("airplane",))


@pytest.mark.parametrize("argv, message", [
    (["personalize", "--adapt", "150", "--eval", "100"], "at most 200"),
    (["personalize", "--batches", "1,x"], "positive integer"),
    (["personalize", "--users-per-count", "0"], "positive integer"),
    (["bake"], "invalid choice"),
])
def test_bad_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        cifar_large.main(argv)
    assert raised.value.code == 2 and message in capsys.readouterr().err


def test_personalize_without_a_trained_model_says_how_to_get_one(tmp_path):
    with pytest.raises(SystemExit, match="cifar_large.py --out .* train` first"):
        cifar_large.main(["--out", str(tmp_path), "personalize", "--no-timing"])
