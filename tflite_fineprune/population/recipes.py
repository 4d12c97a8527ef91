"""Recipes by name: what to do with one user's unlabeled data before scoring.

The grammar (`parse_recipe`):

    auto                       the label-free automatic choice (`Personalizer.personalize`, an `AutoRule`)
    auto:FIELD=V[,FIELD=V]     the same with `AutoRule` fields changed, e.g. `auto:class_alpha=0.01`
    dense                      observe only: the model as exported
    LEVER:V[+LEVER:V...]       expert levers, applied in the order written after observing the data:
        prune:S       prune fraction S of each layer's units, least active first (`prune`)
        magnitude:S   the same by mean |activation| × outgoing weight norm (`prune_magnitude`)
        random:S      S of each layer's units at random (a control; seeded per user)
        classes:F     exclude classes predicted on less than fraction F of the data (`prune_outputs`)
        dormant:T     prune units active on less than fraction T of the data (`prune_dormant`)
        normalize:A   shift BatchNorm statistics toward the user's by strength A (`adapt_normalization`)

e.g. `prune:0.05+classes:0.1`. Any object with a `name` and `apply(personalizer, x, seed)` (returning a short
string saying what it chose, or None) is a recipe too: a new rule plugs in without changing the engines.
"""

import dataclasses

import numpy as np

from ..errors import FinePruneError
from ..auto_recipe import AutoRule

GRAMMAR = ("auto, auto:FIELD=V[,FIELD=V], dense, or LEVER:V[+LEVER:V...] with LEVER one of prune, magnitude, "
           "random, classes, dormant, normalize (docs/population.md)")
# lever → (Personalizer method, the range of its value: "[0,1)" or "[0,1]")
LEVERS = {"prune": ("prune", "[0,1)"), "magnitude": ("prune_magnitude", "[0,1)"), "random": (None, "[0,1)"),
          "classes": ("prune_outputs", "[0,1]"), "dormant": ("prune_dormant", "[0,1]"),
          "normalize": ("adapt_normalization", "[0,1]")}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A recipe from `parse_recipe`: the automatic rule (`rule`), or expert `steps` ((lever, value), ...)."""

    name: str
    rule: AutoRule = None
    steps: tuple = ()

    def apply(self, personalizer, x, seed=0):
        """Personalize `personalizer` for the unlabeled `x` from the dense model; what was chosen (a string)."""
        if self.rule is not None:
            return personalizer.personalize(x, self.rule, progress=False).recipe
        personalizer.reset()
        personalizer.observe(x, progress=False)
        for lever, value in self.steps:
            method = LEVERS[lever][0]
            if method is None:
                random_masks(personalizer, value, seed)
            else:
                getattr(personalizer, method)(value)
        return ""


def parse_recipe(text):
    """A `Recipe` from its name (module docstring); a clear `FinePruneError` for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise FinePruneError(f"a recipe is a name such as 'auto', 'dense' or 'prune:0.5'; got {text!r}")
    text = text.strip()
    if text == "dense":
        return Recipe(text)
    if text == "auto" or text.startswith("auto:"):
        return Recipe(text, rule=_auto_rule(text))
    steps = []
    for part in text.split("+"):
        lever, sep, value = part.partition(":")
        if lever not in LEVERS or not sep:
            raise FinePruneError(f"recipe {text!r}: {part!r} is not a lever setting; expected {GRAMMAR}")
        steps.append((lever, _number(value, LEVERS[lever][1], f"recipe {text!r}: {lever}")))
    return Recipe(text, steps=tuple(steps))


def as_recipes(recipes):
    """Recipe names or recipe objects → recipe objects with distinct names (default: `auto` and `dense`)."""
    if recipes is None:
        recipes = ("auto", "dense")
    if isinstance(recipes, str) or hasattr(recipes, "apply"):
        recipes = (recipes,)
    out = [parse_recipe(r) if isinstance(r, str) else r for r in recipes]
    for recipe in out:
        if not callable(getattr(recipe, "apply", None)) or not isinstance(getattr(recipe, "name", None), str):
            raise FinePruneError(f"a recipe is a name or an object with a name and apply(personalizer, x, seed); "
                                 f"got {type(recipe).__name__}")
    names = [r.name for r in out]
    if not out or len(set(names)) != len(names):
        raise FinePruneError(f"recipes need distinct names; got {names}")
    return out


def _auto_rule(text):
    fields = {f.name: f.type for f in dataclasses.fields(AutoRule)}
    changes = {}
    for item in filter(None, text[len("auto:"):].split(",")) if ":" in text else ():
        name, sep, value = item.partition("=")
        if name not in fields or not sep:
            raise FinePruneError(f"recipe {text!r}: {item!r} is not FIELD=VALUE with FIELD one of the AutoRule "
                                 f"fields {', '.join(fields)}")
        kind = int if fields[name] in (int, "int") else float
        try:
            changes[name] = kind(value)
        except ValueError:
            raise FinePruneError(f"recipe {text!r}: {name} must be a{'n integer' if kind is int else ' number'}, "
                                 f"got {value!r}") from None
    return AutoRule(**changes)


def _number(value, interval, what):
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    upper_open = interval.endswith(")")
    if not (0.0 <= number < 1.0 if upper_open else 0.0 <= number <= 1.0):
        raise FinePruneError(f"{what} must be a number in {interval}, got {value!r}")
    return number


def random_masks(personalizer, sparsity, seed):
    """Prune `sparsity` of each hidden layer's units at random (a control for the activity-based levers)."""
    state = personalizer.get_state()
    masks = state.masks.copy()
    rng = np.random.default_rng(seed)
    for group in personalizer.groups:
        if group.role != "hidden":
            continue
        count = min(group.units - 1, int(np.floor(sparsity * group.units + 0.5)))
        masks[group.offset + rng.choice(group.units, size=count, replace=False)] = 0.0
    fill = state.fill
    if state.sums is not None:  # mean-compensated model: random units get their mean too
        fill = np.where(masks == 0, state.sums / max(state.samples, 1.0), 0.0).astype(np.float32)
    personalizer.set_state(dataclasses.replace(state, masks=masks, fill=fill))
