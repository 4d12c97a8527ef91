"""The old name of `input_checks.py`, kept while the levers import their checks from here."""

from .input_checks import check_positive_int, check_sparsity, check_unit_interval  # noqa: F401
