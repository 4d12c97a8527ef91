"""Optional progress bars: tqdm when installed, else the plain iterable."""


def progress_bar(iterable, desc, unit, enabled=True, total=None):
    """Wrap `iterable` in a tqdm bar when `enabled` and tqdm is importable."""
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional at run time
        return iterable
    return tqdm(iterable, desc=desc, unit=unit, total=total)


STAGE_NAMES = {"trace": "tracing the Keras graph and planning unit groups",
               "convert": "converting to TFLite (the longest stage)",
               "verify": "checking the .tflite against Keras"}


def print_stage(name, seconds):
    """An `export_model(on_stage=...)` callback: one line per export stage, with the time so far."""
    print(f"  [{seconds:5.1f} s] {STAGE_NAMES.get(name, name)}…", flush=True)
