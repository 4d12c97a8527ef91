"""Judge a personalization recipe over a whole population of users, on one machine or a Ray cluster.

TensorFlow-free. `evaluate_population` (also `tflite_fineprune.evaluate_population` and `tflite-fineprune
population`) finds the users on disk (`users.py`), parses the recipes (`recipes.py`), runs each user where it is
evaluated (`worker.py`) on the local or the Ray engine (`engines.py`), and writes the rows as they finish,
resumable, with a summary (`outputs.py`, `summary.py`). docs/population.md describes it.
"""

from .recipes import Recipe, as_recipes, parse_recipe
from .runner import ENGINES, PopulationResult, discover_users, evaluate_population
from .summary import format_summary, plot_gains, summarize
from .users import KINDS, UserSpec
from .worker import COLUMNS

__all__ = ["COLUMNS", "ENGINES", "KINDS", "PopulationResult", "Recipe", "UserSpec", "as_recipes", "discover_users",
           "evaluate_population", "format_summary", "parse_recipe", "plot_gains", "summarize"]
