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


class Counter:
    """A progress bar advanced by hand (`update(n)`): tqdm's rate (users/s) and ETA when installed; `write`
    prints a line above the bar (stderr), with or without tqdm."""

    def __init__(self, total, desc, unit, enabled=True, initial=0):
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # progress bars are optional at run time
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, smoothing=0.1)

    def update(self, n=1):
        if self._bar is not None:
            self._bar.update(n)

    def write(self, line):
        import sys

        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
