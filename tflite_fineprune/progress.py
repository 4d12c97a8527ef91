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
