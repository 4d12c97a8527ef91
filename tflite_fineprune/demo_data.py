"""Where the demo data lives, and the label sets it uses.

One lookup for the library, the converters, the demo, the benchmarks and the
tests: an explicit folder, else `$FINEPRUNE_DATA`, else the per-user data
folder that `tflite-fineprune data fetch` fills (platformdirs' user data dir,
e.g. ~/.local/share/tflite-fineprune on Linux); in a source checkout,
`../shared/data` beside it is a fallback too. Nothing is downloaded here
(data_fetch.py does that, when asked).
"""

import os
import pathlib

# What the data folder holds (data_layout.py, shared with data_sources.py's download table); re-exported.
from .data_layout import (CIFAR10_LABELS, CIFAR10_TEST, DESCRIPTIONS, FSDD, MLPERF_KWS,  # noqa: F401
                          MLPERF_RESNET8, SPEECH_COMMANDS_TEST)
from .errors import InputError

ENVIRONMENT_VARIABLE = "FINEPRUNE_DATA"
_PACKAGE_PARENT = pathlib.Path(__file__).resolve().parents[1]
APP_NAME = "tflite-fineprune"


def user_data_root():
    """The per-user data folder (platformdirs' user data dir; without it, $XDG_DATA_HOME or ~/.local/share)."""
    try:
        from platformdirs import user_data_dir
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return pathlib.Path(base) / APP_NAME
    return pathlib.Path(user_data_dir(APP_NAME, appauthor=False))


def checkout_data_root():
    """`../shared/data` beside a source checkout (the package's parent holds setup.cfg), else None."""
    if (_PACKAGE_PARENT / "setup.cfg").is_file():
        return _PACKAGE_PARENT.parent / "shared" / "data"
    return None


def default_data_root():
    """Where `data fetch` writes unless told: `$FINEPRUNE_DATA`, else the per-user data folder."""
    return pathlib.Path(os.environ.get(ENVIRONMENT_VARIABLE) or user_data_root())


def _candidates(given):
    if given:
        return [pathlib.Path(given)]
    if os.environ.get(ENVIRONMENT_VARIABLE):
        return [pathlib.Path(os.environ[ENVIRONMENT_VARIABLE])]
    checkout = checkout_data_root()
    return [user_data_root()] + ([checkout] if checkout is not None else [])


def data_root(given=None, needs=()):
    """The demo data folder: `given`, else `$FINEPRUNE_DATA`, else the per-user folder, else (in a source
    checkout) `../shared/data`; of the last two, the first that holds all of `needs` (relative paths), else the
    first that exists, else the per-user folder."""
    candidates = _candidates(given)
    for test in (lambda root: all((root / p).exists() for p in needs), lambda root: root.is_dir()):
        for root in candidates:
            if test(root):
                return root
    return candidates[0]


def require_data(relative_paths, given=None, what="this command"):
    """The data root, after checking that it holds every one of `relative_paths`; else a clear error."""
    root = data_root(given, relative_paths)
    missing = [p for p in relative_paths if not (root / p).exists()]
    if missing:
        from .data_sources import datasets_for

        source = ("--data" if given else f"${ENVIRONMENT_VARIABLE}" if os.environ.get(ENVIRONMENT_VARIABLE)
                  else "the default")
        wanted = "; ".join(f"{p} ({DESCRIPTIONS[p]})" if p in DESCRIPTIONS else p for p in missing)
        names = datasets_for(missing)
        target = f" -o {root}" if given else ""
        raise InputError(
            f"{what} needs {wanted} under the demo data folder {root} (from {source}); get it with: "
            f"tflite-fineprune data fetch{target}" + "".join(f" --only {n}" for n in names)
            + f" (or pass --data DIR / set {ENVIRONMENT_VARIABLE}; docs/data.md)"
        )
    return root
