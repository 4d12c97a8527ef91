"""Where each part of the demo data comes from publicly, its SHA-256, and how it is laid out.

One table (`DATASETS`) for `tflite-fineprune data fetch` (data_fetch.py). Each dataset is one or more
downloads, each pinned by URL, size and SHA-256, and a layout function that turns the verified downloads into
the folders docs/data.md describes, inside a staging folder; `provides` names what it creates under the data
root. `content_sha256`, where given, is the digest of the laid-out files (`tree_sha256`): the check for a
download whose archive bytes are not stable (GitHub's generated archives), checked before anything is moved
into place.

Provenance of the checksums (docs/data.md repeats it):
* MLPerf Tiny files: computed from the mlcommons/tiny git repository at the pinned commit; byte-identical to the
  reference copies the project's tests use.
* FSDD: the recordings of tag v1.0.10, digest computed from the git tree (identical to the reference copy).
* Speech Commands test split and CIFAR-10: the SHA-256 published for these archives (Keras' CIFAR-10 loader
  pins the same CIFAR-10 digest); not recomputed here, as the project's reference copies are re-encoded.
"""

import dataclasses
import hashlib
import pathlib
import shutil

from .archive_guard import ExtractLimits, load_arrays, tar_members, unzip, untar
from .errors import FinePruneError
from .data_layout import CIFAR10_LABELS, CIFAR10_TEST, FSDD, SPEECH_COMMANDS_TEST

MLPERF_TINY = "https://raw.githubusercontent.com/mlcommons/tiny/1afd2c9820f795965a6134facd0b4dfae41ef23f/"
MLPERF_KWS_FILES = "benchmark/training/keyword_spotting/trained_models/"
MLPERF_IC_FILES = "benchmark/training/image_classification/trained_models/"
FSDD_TAG = "1.0.10"
# Bounds on unpacking, a few times what the published archives hold (test split: 4,890 WAVs, 154 MB; CIFAR-10:
# 8 members, 187 MB; FSDD: about 3,000 WAVs, 27 MB); GitHub's FSDD archive is not pinned, so its size is bounded.
SPEECH_LIMITS = ExtractLimits(total=600_000_000, members=20_000)
CIFAR_LIMITS = ExtractLimits(total=600_000_000, members=100)
FSDD_LIMITS = ExtractLimits(total=200_000_000, members=20_000)
FSDD_MAX_BYTES = 150_000_000


@dataclasses.dataclass(frozen=True)
class Download:
    """One file: its upstream `url`, `sha256` and `size` in bytes (else at most `max_size`); `name` is its path under
    a `--mirror` URL."""

    name: str
    url: str
    sha256: str
    size: int = None
    max_size: int = None  # where the size is not pinned: the most a download may be


@dataclasses.dataclass(frozen=True)
class Dataset:
    """`layout(paths, staging)` turns the verified downloads (`{Download.name: path}`) into `provides` under staging."""

    name: str
    description: str
    downloads: tuple
    layout: object
    provides: tuple
    content_sha256: str = None


def datasets_for(relative_paths, datasets=None):
    """The names of the datasets that provide `relative_paths` (data-root relative), in table order."""
    return [d.name for d in (DATASETS if datasets is None else datasets)
            if any(p == q or p.startswith(q + "/") for p in relative_paths for q in d.provides)]


def file_sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder):
    """SHA-256 over every file under `folder`: lines `relative/posix/path NUL sha256-of-file`, sorted by path."""
    folder = pathlib.Path(folder)
    lines = sorted(f"{p.relative_to(folder).as_posix()}\0{file_sha256(p)}\n" for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def layout_speech_commands(paths, staging):
    """The test split archive holds `<label>/<file>.wav`, README and LICENSE at its top: extracted as they are."""
    target = staging / SPEECH_COMMANDS_TEST
    target.mkdir(parents=True)
    untar(paths["speech_commands_test_set_v0.02.tar.gz"], target, SPEECH_LIMITS)


def _copy_files(paths, folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        destination = folder / name.split("/", 1)[1]
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths[name], destination)


def layout_mlperf_kws(paths, staging):
    _copy_files(paths, staging / "mlperf_tiny" / "keyword_spotting", [n for n in paths if n.startswith("kws/")])


def layout_mlperf_resnet8(paths, staging):
    _copy_files(paths, staging / "mlperf_tiny" / "image_classification", [n for n in paths if n.startswith("ic/")])


def _cifar_batches(archive):
    names = ("cifar-10-batches-py/batches.meta", "cifar-10-batches-py/test_batch")
    found = tar_members(archive, names, CIFAR_LIMITS)
    for name in names:
        if name not in found:
            raise FinePruneError(f"the CIFAR-10 archive has no {name}; expected the python version "
                                 "(cifar-10-python.tar.gz)")
    return [load_arrays(found[name], f"the CIFAR-10 file {name}") for name in names]


def _cifar_labels(meta):
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, bytes) for n in names):
        raise FinePruneError("the CIFAR-10 batches.meta holds no list of label names; expected the python version")
    return tuple(n.decode(errors="replace") for n in names)


def layout_cifar10(paths, staging):
    """The python-version test batch → `<class>/<nnnn>.jpg` per class, in batch order.

    Encoded as Pillow's default JPEG (quality 75, 4:2:0), the encoding of the reference copy the README's vision
    rows were measured on (read from its quantization tables); the original PNG-quality pixels score higher.
    """
    import numpy as np
    from PIL import Image

    meta, batch = _cifar_batches(paths["cifar-10-python.tar.gz"])
    names = _cifar_labels(meta)
    if names != CIFAR10_LABELS:
        raise FinePruneError(f"the CIFAR-10 archive names its classes {names}; expected {CIFAR10_LABELS}")
    data, labels = (batch.get(b"data"), batch.get(b"labels")) if isinstance(batch, dict) else (None, None)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise FinePruneError(f"the CIFAR-10 test batch holds data of {getattr(data, 'shape', type(data).__name__)} "
                             f"{getattr(data, 'dtype', '')}; expected uint8 [N, 3072]")
    if not isinstance(labels, list) or len(labels) != len(data) \
            or not all(type(y) is int and 0 <= y < len(CIFAR10_LABELS) for y in labels):
        raise FinePruneError(f"the CIFAR-10 test batch holds {len(data):,} images but not {len(data):,} labels "
                             "in 0..9; expected the python version")
    labels = np.asarray(labels)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    for index, label in enumerate(CIFAR10_LABELS):
        folder = staging / CIFAR10_TEST / label
        folder.mkdir(parents=True)
        for n, image in enumerate(images[labels == index]):
            Image.fromarray(image).save(folder / f"{n:04d}.jpg")


def layout_fsdd(paths, staging):
    """The GitHub archive's `<repo>-<tag>/recordings/*.wav` → `fsdd/recordings/`."""
    archive = paths[f"free-spoken-digit-dataset-{FSDD_TAG}.zip"]
    target = staging / FSDD
    target.mkdir(parents=True)

    def recording(name):
        parts = name.split("/")
        return target / parts[2] if len(parts) == 3 and parts[1] == "recordings" and name.endswith(".wav") else None

    if not unzip(archive, recording, FSDD_LIMITS):
        raise FinePruneError(f"{archive} has no recordings/*.wav; expected the free-spoken-digit-dataset archive")


def _mlperf(prefix, folder, files):
    return tuple(Download(f"{prefix}/{name}", MLPERF_TINY + folder + name, sha256, size)
                 for name, sha256, size in files)


DATASETS = (
    Dataset("speech_commands", "Speech Commands v0.02 test split (4,890 clips, CC BY 4.0)",
            (Download("speech_commands_test_set_v0.02.tar.gz",
                      "https://storage.googleapis.com/download.tensorflow.org/data/"
                      "speech_commands_test_set_v0.02.tar.gz",
                      "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df", 112_563_277),),
            layout_speech_commands, (SPEECH_COMMANDS_TEST,)),
    Dataset("mlperf_kws", "MLPerf Tiny keyword-spotting DS-CNN (SavedModel and .tflite, Apache-2.0)",
            _mlperf("kws", MLPERF_KWS_FILES, (
                ("kws_ref_model/saved_model.pb",
                 "80665dd19eeb03d1152fdc098b5635261731b23478d09f6ff2166da799f98138", 819_446),
                ("kws_ref_model/variables/variables.data-00000-of-00001",
                 "5ebfddd34e85a2d35e87e27a8a803353534019bb460907b16db5fa72d757e8c5", 321_307),
                ("kws_ref_model/variables/variables.index",
                 "3f21dd9ea6736e20e70c5ed2f40ed9d8a7d12b98316ac0e4ab8f4eb7e303d738", 9_326),
                ("kws_ref_model.tflite", "aeea436800704fce17b17292e4412630ad856e9d777c044c64ef748a880bd0ae", 53_936),
                ("kws_ref_model_float32.tflite",
                 "e5004c6f1012246e33fa068d8488325538e0444073cd361f5a7edb40c73f12d2", 43_392),
            )) + (Download("kws/LICENSE.md", MLPERF_TINY + "LICENSE.md",
                           "0d542e0c8804e39aa7f37eb00da5a762149dc682d7829451287e11b938e94594", 10_174),),
            layout_mlperf_kws, ("mlperf_tiny/keyword_spotting",)),
    Dataset("mlperf_resnet8", "MLPerf Tiny ResNet-8 for CIFAR-10 (Keras .h5 and .tflite, Apache-2.0)",
            _mlperf("ic", MLPERF_IC_FILES, (
                ("pretrainedResnet.h5", "5f938a8eea605438cc7360aa13c987bc6d7bd0c8d931b2917361ae7ae4eeda2f", 1_116_712),
                ("pretrainedResnet.tflite",
                 "b5c0046d6e0328b4956afd6baa29555a29b1f1c65bdd45aaed75b7cd484d9f79", 318_144),
                ("pretrainedResnet_quant.tflite",
                 "3c002613d1b2475eb51dd78dfb85a546c8ae658dee71cf6ade43b022fe205415", 98_496),
            )) + (Download("ic/LICENSE.md", MLPERF_TINY + "LICENSE.md",
                           "0d542e0c8804e39aa7f37eb00da5a762149dc682d7829451287e11b938e94594", 10_174),),
            layout_mlperf_resnet8, ("mlperf_tiny/image_classification",)),
    Dataset("cifar10", "CIFAR-10 test split → 10,000 class-folder JPEGs",
            (Download("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                      "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170_498_071),),
            layout_cifar10, (CIFAR10_TEST,)),
    Dataset("fsdd", f"Free Spoken Digit Dataset v{FSDD_TAG} recordings (3,000 clips, CC BY-SA 4.0)",
            (Download(f"free-spoken-digit-dataset-{FSDD_TAG}.zip",
                      f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{FSDD_TAG}.zip",
                      None, max_size=FSDD_MAX_BYTES),),
            layout_fsdd, (FSDD,),
            content_sha256="99aa5e3a7c822ab55b2a3b47e0b05aeb9f011c54837a12e3831ad24108330829"),
)
