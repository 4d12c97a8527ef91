"""What the sub-commands share: the model and data arguments, opening the model, loading a data folder."""

import argparse
import contextlib
import os
import sys
import unicodedata

from ..errors import FinePruneError, InputError
from ..interpreters import BACKENDS

NAMED_FILES = 3  # how many files an error names


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


def printable(text):
    """`text` safe to print as (part of) one line: control characters escaped as repr writes them (a newline
    in a file name cannot start a forged line), and the bytes of a non-UTF-8 file name (surrogate-escaped)
    as \\xNN, so that no output encoding can fail on them. Other characters, accents included, stay."""
    out = []
    for char in str(text):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            out.append(repr(char)[1:-1] if char.isascii() else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _warn(message):
    print(f"tflite-fineprune: warning: {printable(message)}", file=sys.stderr, flush=True)


def check_output(path, flag, inputs, kind):
    """Before any work: refuse an output `path` that is one of the command's `inputs` (flag → path) or an
    existing file that is not of the `kind` (`(what, offset, prefix)`) the command writes; its folder must
    exist and be writable. Nothing a user owns is replaced by mistake."""
    from ..safe_io import check_output_folder, starts_with

    what, offset, prefix = kind
    if os.path.exists(path):
        for name, given in inputs.items():
            if given is not None and os.path.exists(given) and os.path.samefile(path, given):
                raise FinePruneError(f"{flag} {path!r} is the same file as {name}; it is never replaced by the "
                                     "output: name another " + flag)
        if os.path.isfile(path) and not starts_with(path, prefix, offset):
            raise FinePruneError(f"{flag} {path!r} exists and is not {what}; only {what} is replaced: "
                                 f"name another {flag} (or move that file away)")
    check_output_folder(path, flag)


TFLITE_FILE = ("a .tflite file", 4, b"TFL3")


def _open(args):
    from ..datafiles import list_files
    from ..runtime import Personalizer

    list_files(args.data)  # a wrong --data fails before the model is loaded

    return Personalizer(args.model, backend=args.backend, batch_size=args.batch_size)


def _load_data(args, personalizer, labels=None):
    """The --data folder as a `FolderData`: batches of the model's input shape, dtype and sample rate, decoded
    as they are consumed (a large folder is never held whole); a file bar shows the first pass."""
    from ..folderdata import FolderData

    meta = personalizer.metadata
    return FolderData(args.data, meta.input_shape[1:], args.preprocess, labels=labels, dtype=meta.input_dtype,
                      sample_rate=meta.sample_rate, batch_size=personalizer.batch_size, notes=_note, progress=True)


@contextlib.contextmanager
def naming_files(data):
    """A batch that overflowed inside the model (`NonFiniteActivity`) is named by the files it came from."""
    from ..runtime import NonFiniteActivity

    try:
        yield
    except NonFiniteActivity as exc:
        names = ", ".join(os.path.relpath(path, data.root) for path in data.current_files[:NAMED_FILES])
        more = len(data.current_files) - NAMED_FILES
        raise InputError(f"{exc} (its files: {names}{f' and {more} more' if more > 0 else ''})") from None


def _note(line):
    print(f"note: {printable(line)}", flush=True)
