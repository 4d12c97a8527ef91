"""Where the reference data lives, and the label sets it uses.

One lookup for the library, the converters, the demo, the benchmarks and the
tests: an explicit folder, else `$FINEPRUNE_DATA`, else `../shared/data`
beside the repository checkout. Nothing is ever downloaded.
"""

import os
import pathlib

from .errors import FinePruneError

ENVIRONMENT_VARIABLE = "FINEPRUNE_DATA"
CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# What the shared data folder holds, and where each part comes from publicly (docs/data.md has the layout).
SPEECH_COMMANDS_TEST = "speech_commands_v0.02_test"
MLPERF_KWS = "mlperf_tiny/keyword_spotting/kws_ref_model"
MLPERF_RESNET8 = "mlperf_tiny/image_classification/pretrainedResnet.h5"
CIFAR10_TEST = "cifar10_test"
FSDD = "fsdd/recordings"
DESCRIPTIONS = {
    SPEECH_COMMANDS_TEST: "the Google Speech Commands v0.02 test split (<label>/<speaker>_nohash_<n>.wav)",
    MLPERF_KWS: "the MLPerf Tiny keyword-spotting DS-CNN SavedModel",
    MLPERF_RESNET8: "the MLPerf Tiny ResNet-8 (pretrainedResnet.h5)",
    CIFAR10_TEST: "the CIFAR-10 test images (<class>/<n>.jpg)",
    FSDD: "the Free Spoken Digit Dataset recordings (<digit>_<speaker>_<n>.wav)",
}

_BESIDE_CHECKOUT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def data_root(given=None):
    """The reference data folder: `given`, else `$FINEPRUNE_DATA`, else `../shared/data` beside the checkout."""
    if given:
        return pathlib.Path(given)
    return pathlib.Path(os.environ.get(ENVIRONMENT_VARIABLE) or _BESIDE_CHECKOUT)


def require_data(relative_paths, given=None, what="this command"):
    """The data root, after checking that it holds every one of `relative_paths`; else a clear error."""
    root = data_root(given)
    missing = [p for p in relative_paths if not (root / p).exists()]
    if missing:
        source = "--data" if given else f"${ENVIRONMENT_VARIABLE}" if os.environ.get(ENVIRONMENT_VARIABLE) else "the default"
        wanted = "; ".join(f"{p} ({DESCRIPTIONS[p]})" if p in DESCRIPTIONS else p for p in missing)
        raise FinePruneError(
            f"{what} needs {wanted} under the reference data folder {root} (from {source}); "
            f"pass --data DIR or set {ENVIRONMENT_VARIABLE}. docs/data.md says what goes there and where to get it. "
            "Nothing is downloaded."
        )
    return root
