"""Load folders of `.npy`, image and WAV files into model-shaped batches.

Desktop-side decoding only: images become pixels in 0–255 (resized to the
model's height and width with Pillow), audio files (WAV, FLAC, OGG, MP3) float32
samples in [-1, 1], resampled to an audio model's rate. Files that this
installation cannot decode (MP3 before libsndfile 1.1, anything but WAV without
soundfile) and files of other kinds are skipped, and `folderdata.FolderData` says which
and why. Anything else the model needs (scaling, features) belongs either
inside the exported graph or in a `preprocess` hook.
"""

import collections
import importlib
import os
import stat
import wave

import numpy as np

from .errors import FinePruneError, InputError

NPY_SUFFIXES = (".npy",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
SUFFIXES = NPY_SUFFIXES + IMAGE_SUFFIXES + AUDIO_SUFFIXES


class UnreadableFile(InputError):
    """A data file that cannot be read or decoded, or does not fit the model: the folder readers skip it
    and say so (`folderdata.FolderData`). A preprocess hook's failure is a plain `FinePruneError`."""


def check_regular(path):
    """Refuse, before opening, what is not a regular file: reading a FIFO named x.wav would wait forever."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(f"{path} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile(f"{path} is not a regular file (a pipe, socket, device or folder)")


def list_files(root):
    """Sorted data files under `root` (recursively) that this installation can read (`scan_folder`)."""
    return scan_folder(root)[0]


def scan_folder(root):
    """`(files, skipped)`: the readable data files under `root`, sorted, and the other files (not hidden) as a
    dict reason → paths. A folder with no readable file is an error that says what was skipped."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise InputError(f"data folder {root!r} does not exist or is not a folder")
    unreadable = unreadable_suffixes()
    found, skipped = [], collections.defaultdict(list)
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            if name.startswith("."):
                continue
            suffix = os.path.splitext(name)[1].lower()
            path = os.path.join(directory, name)
            if suffix in unreadable:
                skipped[unreadable[suffix]].append(path)
            elif suffix in SUFFIXES:
                found.append(path)
            else:
                skipped[f"not a data file: expected {', '.join(SUFFIXES)}"].append(path)
    if not found:
        raise InputError(f"data folder {root!r} holds no {', '.join(SUFFIXES)} files"
                         + (f" that can be read here ({skipped_note(skipped)})" if skipped else ""))
    return found, dict(skipped)


# libsndfile decodes MP3 from version 1.1.0 on (soundfile's wheels bundle 1.2 or later).
def unreadable_suffixes():
    """Audio suffixes this installation cannot decode, each with the reason."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: soundfile installed without its libsndfile
        return {s: "not readable without soundfile: pip install soundfile" for s in AUDIO_SUFFIXES if s != ".wav"}
    if "MP3" not in soundfile.available_formats():
        version = getattr(soundfile, "__libsndfile_version__", "?")
        return {".mp3": f"not readable by this soundfile's libsndfile {version}; 1.1 or later decodes MP3: "
                        "pip install -U soundfile"}
    return {}


def skipped_note(skipped):
    """One line for the files `scan_folder` skipped: how many, of which kind, and why."""
    total = sum(len(paths) for paths in skipped.values())
    parts = []
    for reason, paths in skipped.items():
        kinds = sorted({os.path.splitext(p)[1].lower() or "no suffix" for p in paths})
        parts.append(f"{len(paths)} {', '.join(kinds)} ({reason})")
    return f"skipped {total} file{'s' if total != 1 else ''}: " + "; ".join(parts)


def resampled_note(rates, model_rate):
    """One line for the audio files resampled to the model's rate (`rates`: a Counter of source rates)."""
    total = sum(rates.values())
    sources = ", ".join(f"{count} at {rate} Hz" for rate, count in sorted(rates.items()))
    return (f"resampled {total} audio file{'s' if total != 1 else ''} to the model's {model_rate} Hz ({sources}) "
            "with soxr")


def _pillow():
    """Pillow's Image module and the exceptions a bad image file raises."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise FinePruneError("reading images needs Pillow: pip install pillow") from None
    # DecompressionBombError: a header claiming a huge image (e.g. 20000×20000) is refused unread.
    return Image, (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


def load_image(path, sample_shape):
    Image, image_errors = _pillow()
    if len(sample_shape) != 3 or sample_shape[-1] not in (1, 3):
        raise UnreadableFile(f"{path}: the model input {sample_shape} is not an image (H, W, 1 or 3)")
    height, width, channels = sample_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32)
    except image_errors as exc:
        raise UnreadableFile(f"{path} is not a readable image ({type(exc).__name__}: {exc})") from None
    return pixels.reshape(sample_shape)


def load_wav(path):
    """Mono float32 samples in [-1, 1] and the sample rate of a PCM WAV file."""
    try:
        with wave.open(os.fspath(path), "rb") as f:
            width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
            frames = f.readframes(f.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise UnreadableFile(f"{path} is not a readable PCM WAV file ({exc})") from None
    if width not in (1, 2, 4):
        raise UnreadableFile(f"{path}: {8 * width}-bit WAV is not supported (8, 16 or 32-bit PCM)")
    dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
    samples = np.frombuffer(frames[:len(frames) - len(frames) % (width * channels)], dtype=dtype)
    if samples.size == 0:
        raise UnreadableFile(f"{path} holds no audio samples")
    audio = samples.astype(np.float32)
    audio = (audio - 128.0) / 128.0 if width == 1 else audio / float(2 ** (8 * width - 1))
    return audio.reshape(-1, channels).mean(axis=1), rate


def load_audio(path):
    """Mono float32 samples and the sample rate: soundfile (WAV, FLAC, OGG, MP3) when installed, else PCM WAV."""
    try:
        import soundfile
    except ImportError:
        if not str(path).lower().endswith(".wav"):
            raise UnreadableFile(f"{path}: reading {os.path.splitext(path)[1]} files needs soundfile "
                                 "(pip install soundfile)") from None
        return load_wav(path)
    try:
        audio, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # libsndfile errors are RuntimeErrors
        raise UnreadableFile(f"{path} is not a readable audio file ({exc})") from None
    if audio.size == 0:
        raise UnreadableFile(f"{path} holds no audio samples")
    return audio.mean(axis=1), int(rate)


def fit_audio(path, audio, rate, sample_shape, model_rate):
    """Resample to the model's rate and pad (zeros at the end) or cut to its length."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UnreadableFile(f"{path} claims a sample rate of {rate} Hz; "
                             f"expected {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz")
    if audio.size == 0:
        raise UnreadableFile(f"{path} holds no audio samples")
    if not np.all(np.isfinite(audio)):
        raise UnreadableFile(f"{path} holds NaN or infinite samples")
    if not np.any(audio):
        raise UnreadableFile(f"{path} is silent (every sample is 0)")
    expected = int(np.prod(sample_shape))
    if not model_rate:
        return _fit_audio(path, audio, sample_shape)
    if rate != model_rate:
        audio = resample(path, audio, rate, model_rate)
    clip = np.zeros(expected, np.float32)
    clip[:min(expected, audio.size)] = audio[:expected]
    return clip.reshape(sample_shape)


def resample(path, audio, rate, model_rate):
    """Resample float32 audio from `rate` to `model_rate` Hz with soxr (librosa's default resampler)."""
    try:
        import soxr
    except ImportError:
        raise InputError(f"{path} is {rate} Hz and the model takes {model_rate} Hz; resampling needs soxr "
                         "(pip install soxr, or install tflite-fineprune with the litert or tflite-runtime "
                         "extra)") from None
    return soxr.resample(audio.astype(np.float32), rate, model_rate, quality="HQ").astype(np.float32)


def load_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UnreadableFile(f"{path} is not a readable .npy array ({exc})") from None


def resolve_hook(spec):
    """Import a `module:function` preprocessing hook."""
    if spec is None or callable(spec):
        return spec
    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise FinePruneError(f"preprocess hook {spec!r} must look like 'module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise FinePruneError(f"cannot import preprocess hook {spec!r}: {exc}") from None


def load_samples(path, sample_shape, preprocess=None, dtype="float32", sample_rate=0, resampled=None):
    """Samples (an array `(n,) + sample_shape`) stored in one file.

    `preprocess(raw, path)`, when given, receives the decoded file (an image
    array, a `(samples, rate)` tuple for audio, or the `.npy` array) and returns
    one sample or a batch. Audio for a model with a `sample_rate` (Hz) is
    resampled to it and padded or cut to the model's length; `resampled`, a
    Counter, then counts the file under its own rate.
    """
    check_regular(path)
    lower = path.lower()
    if lower.endswith(NPY_SUFFIXES):
        raw = load_npy(path)
    elif lower.endswith(IMAGE_SUFFIXES):
        raw = load_image(path, sample_shape) if preprocess is None else _raw_image(path)
    else:
        raw = load_audio(path)
        if preprocess is None:
            if resampled is not None and sample_rate and raw[1] != sample_rate:
                resampled[raw[1]] += 1
            raw = fit_audio(path, raw[0], raw[1], sample_shape, sample_rate)
    if preprocess is not None:
        raw = _run_hook(preprocess, raw, path)
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError) as exc:
        raise FinePruneError(f"{path}: the preprocess hook returned {type(raw).__name__}, which is not an array "
                             f"({exc})") from None
    # Without a hook a file that does not fit is the file's fault (skipped); with one, the hook's (an error).
    refuse = UnreadableFile if preprocess is None else FinePruneError
    if arr.shape == tuple(sample_shape):
        arr = arr[None]
    if arr.ndim == 0 or arr.shape[1:] != tuple(sample_shape):
        via = f" (the preprocess hook returned a {type(raw).__name__})" if preprocess is not None else ""
        raise refuse(f"{path} gives shape {arr.shape}{via}; the model takes samples of shape "
                     f"{tuple(sample_shape)} or a batch of them")
    if arr.shape[0] == 0:
        raise refuse(f"{path} gives no samples (shape {arr.shape})")
    if arr.dtype.kind not in "fiu":
        raise refuse(f"{path} gives dtype {arr.dtype} (a {type(raw).__name__}); expected numbers")
    target = np.dtype(dtype)
    if target.kind != "f":
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise refuse(f"{path} holds values outside the model's {dtype} input range")
        return np.round(arr).astype(target)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = arr.astype(target)
    if not np.all(np.isfinite(cast)):
        raise refuse(f"{path} holds NaN or infinite values (as {dtype}: finite values beyond "
                     f"±{np.finfo(target).max:.3g} count as infinite)")
    return cast


def _run_hook(preprocess, raw, path):
    name = getattr(preprocess, "__qualname__", repr(preprocess))
    try:
        return preprocess(raw, path)
    except FinePruneError:
        raise
    except Exception as exc:  # a user's hook may raise anything; say whose and on which file
        raise FinePruneError(f"{path}: the preprocess hook {name} raised {type(exc).__name__}: {exc}") from None


def _raw_image(path):
    Image, image_errors = _pillow()
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except image_errors as exc:
        raise UnreadableFile(f"{path} is not a readable image ({type(exc).__name__}: {exc})") from None


def _fit_audio(path, audio, sample_shape):
    expected = int(np.prod(sample_shape))
    if audio.size != expected:
        raise UnreadableFile(
            f"{path} has {audio.size} samples; the model takes {expected}. "
            "Pass a preprocess hook to crop, pad or compute features"
        )
    return audio.reshape(sample_shape)


def label_index(path, root, labels):
    """The class index of a file from its class folder (a label name or an integer)."""
    relative = os.path.relpath(path, root)
    parts = relative.split(os.sep)
    if len(parts) < 2:
        raise InputError(f"{path} is not inside a class folder; evaluation needs DATA/<label>/<file>")
    name = parts[0]
    if name in labels:
        return labels.index(name)
    if name.isdigit():
        return int(name)
    raise InputError(
        f"folder {name!r} is not one of the model's labels ({', '.join(labels) or 'none embedded'}) "
        "nor a class index"
    )
