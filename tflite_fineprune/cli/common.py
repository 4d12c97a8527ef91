"""What the sub-commands share: the model and data arguments, opening the model, loading a data folder."""

import argparse
import sys

from ..interpreters import BACKENDS


def _fraction(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _runtime_args(p):
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--data", required=True, help="folder of .npy, image or audio (.wav, .flac, .ogg, .mp3) files")
    p.add_argument("--preprocess", help="module:function turning a decoded file into samples")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKENDS,
                   help="which TFLite interpreter runs the model (auto: the first one installed)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per interpreter call")


def _warn(message):
    print(f"tflite-fineprune: warning: {message}", file=sys.stderr, flush=True)


def _open(args):
    from ..datafiles import list_files
    from ..runtime import Personalizer

    list_files(args.data)  # a wrong --data fails before the model is loaded

    return Personalizer(args.model, backend=args.backend, batch_size=args.batch_size)


def _load_data(args, personalizer, labels=None):
    """The --data folder decoded into the model's input shape, dtype and sample rate."""
    from ..datafiles import load_folder

    meta = personalizer.metadata
    return load_folder(args.data, meta.input_shape[1:], args.preprocess, labels=labels, dtype=meta.input_dtype,
                       sample_rate=meta.sample_rate, progress=True, notes=_note)


def _note(line):
    print(f"note: {line}", flush=True)
