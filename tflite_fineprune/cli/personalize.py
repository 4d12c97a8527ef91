"""`tflite-fineprune personalize`: automatic by default, expert rates on request; the state file it writes."""

import os

import numpy as np

from ..errors import FinePruneError, ModelError, StateError
from .model_and_data import _load_data, _open, _warn, naming_files, printable


# What a second `personalize` with the same --state does; --help, docs/cli.md, docs/newcomer.md and the run's
# own note say it in these words (tests/test_cli_says.py checks).
RERUN = "every run starts from the dense model on the data given and replaces the state file"


def _personalize_examples():
    from ..readme_numbers import README_SECTION, row

    classes, auto = row("vision", "classes <10%"), row("vision", "auto (default)")
    mlp = row("fashion", "prune 50% + classes <10%")
    return f"""examples:
  # automatic and label-free (the default): chooses what to prune and shift from your data alone
  tflite-fineprune personalize model.tflite --data my_photos/ --state me.state
  # expert: exclude the classes predicted on < 10% of your data (CIFAR-10 class-subset users:
  # {classes.change}, {classes.helped} of {classes.users} helped; the automatic call: {auto.change})
  tflite-fineprune personalize model.tflite --data my_photos/ --state me.state --min-class-fraction 0.1
  # expert, over-parameterized models only (Fashion-MNIST MLP: {mlp.change}); on compact models
  # (speech, ResNet-8) unit pruning lowered accuracy
  tflite-fineprune personalize mlp.tflite --data my_photos/ --state me.state --sparsity 0.5 --min-class-fraction 0.1
{RERUN[0].upper() + RERUN[1:]};
--fresh also replaces another model's state file. Measurements: README, {README_SECTION}."""


def cmd_personalize(args):
    from ..input_checks import check_sparsity

    if args.sparsity is not None:
        check_sparsity(args.sparsity)
    if args.min_class_fraction is not None:
        check_sparsity(args.min_class_fraction, "--min-class-fraction")
    _check_state_path(args)
    personalizer = _open(args)
    if personalizer.metadata.slim:
        raise ModelError(f"{args.model} is a slim model (pruned units removed): it can only predict; "
                         "personalize the original export")
    if args.min_class_fraction is not None and personalizer.metadata.output_group is None:
        # Before any work; the library says what, the command adds how to re-export.
        raise ModelError(f"{args.model} was exported without output (class) pruning; re-export it with "
                         "`tflite-fineprune export --prune-outputs` (Python: export_model(..., "
                         "prune_outputs=True); the converters: --prune-outputs)")
    _say_what_is_replaced(args, personalizer)
    if args.sparsity is None and args.min_class_fraction is None:
        return _personalize_auto(args, personalizer)
    _warn_if_speech(personalizer, args.sparsity, args.min_class_fraction)
    data = _load_data(args, personalizer)
    with naming_files(data):
        before = np.argmax(personalizer.observe(data, progress=True), axis=-1)
    if args.sparsity is not None:
        sparsity = personalizer.prune(args.sparsity)
        if args.sparsity > 0:
            _warn_if_predictions_changed(before, np.argmax(personalizer.predict(data, progress=False), axis=-1))
    else:
        sparsity = personalizer.sparsity()
    if args.min_class_fraction is not None:
        kept_before = personalizer.masks[personalizer.metadata.output_group.name]
        sparsity = personalizer.prune_outputs(args.min_class_fraction)
        _print_dropped_classes(personalizer, kept_before)
    personalizer.save_state(args.state)
    print(f"observed {data.samples} samples from {len(data.files)} files; pruned {sparsity.pruned_units}/"
          f"{sparsity.total_units} units (unit sparsity {sparsity.units:.1%}, weights {sparsity.weights:.1%}, "
          f"MACs {sparsity.macs:.1%}); state saved to {printable(args.state)}")


def _check_state_path(args):
    """Before the model and the data are read: --state may name only a state file (of any model) or a new
    file, in a folder that can be written. The model itself, or any other file, is never replaced, --fresh
    or not."""
    from ..state import is_state_file
    from ..safe_io import check_output_folder

    if os.path.exists(args.state):
        if os.path.exists(args.model) and os.path.samefile(args.state, args.model):
            raise FinePruneError(f"--state {args.state!r} is the model itself; personalize writes a state file "
                                 "and never replaces the model: name another --state, e.g. user.state")
        if not is_state_file(args.state):  # a folder, a pipe or any other file is left as it is
            raise FinePruneError(f"--state {args.state!r} exists and is not a tflite-fineprune state file; "
                                 "personalize replaces only state files (with --fresh too), so it is left as it "
                                 "is: name another --state")
    check_output_folder(args.state, "--state")


def _say_what_is_replaced(args, personalizer):
    """An existing --state is replaced (RERUN): say so; refuse another model's state file (or a damaged one)
    unless --fresh. Leaves the personalizer dense."""
    if not os.path.exists(args.state):
        return
    try:
        personalizer.load_state(args.state)
    except FinePruneError as exc:
        if not args.fresh:
            raise StateError(f"{exc}; personalize would replace it: pass --fresh to replace it, or name "
                             "another --state") from None
        print(f"note: replacing {printable(args.state)} (--fresh): {printable(exc)}")
        return
    print(f"note: replacing {printable(args.state)} ({personalizer.samples} samples observed before): {RERUN}")
    personalizer.reset()


# How many predictions unit pruning may change on the user's own data before the CLI warns: on the compact
# models the README measures, settings that changed many predictions lowered accuracy.
CHANGED_PREDICTIONS_WARNING = 0.10


def _warn_if_speech(personalizer, sparsity, min_class_fraction):
    """The README's speaker measurements (DS-CNN, 53 speakers) found every expert pruning setting harmful."""
    from ..readme_numbers import README_SECTION, row

    if personalizer.metadata.sample_rate <= 0:
        return
    if sparsity is not None and sparsity >= 0.02:
        two, five = row("speech", "prune 2% units"), row("speech", "prune 5% units")
        _warn(f"--sparsity {sparsity:g} on a speech model: in the README's speaker measurements ({README_SECTION}; "
              f"MLPerf Tiny DS-CNN, {two.users} speakers) pruning 2% of units lowered mean accuracy {two.change} and "
              f"hurt {two.hurt} speakers, 5% gave {five.personalized}; --sparsity 0 keeps the units, and the "
              "automatic call (no --sparsity) is what helped speakers")
    if min_class_fraction is not None and min_class_fraction > 0:
        unseen = row("speech", "drop unseen classes")
        _warn(f"--min-class-fraction {min_class_fraction:g} on a speech model: in the README's speaker measurements "
              f"even dropping only the classes never predicted lowered mean accuracy {unseen.change} and hurt "
              f"{unseen.hurt} of {unseen.users} speakers")


def _warn_if_predictions_changed(before, after):
    changed = float(np.mean(before != after))
    if changed > CHANGED_PREDICTIONS_WARNING:
        _warn(f"this --sparsity changed the predicted class of {changed:.0%} of your {len(before)} samples; in the "
              "README's measurements, settings that change many predictions lowered "
              "accuracy on compact models. Consider a lower --sparsity, or the automatic call (no --sparsity)")


def _print_dropped_classes(personalizer, kept_before):
    group = personalizer.metadata.output_group
    kept = personalizer.masks[group.name]
    labels = personalizer.labels or [f"class {i}" for i in range(group.units)]
    dropped = [labels[i] for i in np.flatnonzero((kept_before == 1) & (kept == 0))]
    excluded = [labels[i] for i in np.flatnonzero(kept == 0)]
    print(f"dropped {len(dropped)} classes: {', '.join(dropped) or 'none'}"
          + (f"; {len(excluded)} classes excluded in all: {', '.join(excluded)}" if len(excluded) > len(dropped)
             else "") + f"; kept: {', '.join(labels[i] for i in np.flatnonzero(kept))}")


def _personalize_auto(args, personalizer):
    """The default: the label-free automatic choice (auto_recipe.py), from the dense model."""
    data = _load_data(args, personalizer)
    with naming_files(data):
        report = personalizer.personalize(data, progress=False)
    personalizer.save_state(args.state)
    print(f"observed {data.samples} samples from {len(data.files)} files\n{report}\nstate saved to "
          f"{printable(args.state)}")
