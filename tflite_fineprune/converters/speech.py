"""The speech converter: keyword-spotting models that take raw 16 kHz PCM.

Commands (see README):

    python -m tflite_fineprune.converters.speech mlperf -o KWS.tflite [--data DIR]
    python -m tflite_fineprune.converters.speech train DATA_DIR -o KWS.tflite [--keras MODEL.keras] [--epochs MAX]
        [--width W] [--speaker-pattern REGEX] [--holdout-speakers A,B] ...   (recipe and options: docs/training.md)

`mlperf` rebuilds the MLPerf Tiny DS-CNN in Keras 3, loads the weights of its
SavedModel checkpoint, puts the MFCC front-end in front of it and exports the
result: input float32 PCM `[N, 16000]` in [-1, 1] (int16 values work too).
"""

import pathlib
import sys

import keras
import numpy as np

from .command_line import add_export_command, as_options, command_parser, export_options, run_command
from .frontend import CLIP_SAMPLES, SAMPLE_RATE, MlperfMfcc
from .kws_model import KWS_LABELS, load_mlperf_ds_cnn  # noqa: F401 (KWS_LABELS: part of this converter's API)
from .. import demo_data
from ..demo_data import MLPERF_KWS
from ..errors import FinePruneError, InputError

def with_frontend(classifier, name="kws"):
    """Raw PCM `[N, 16000]` → MFCC front-end → `classifier`."""
    pcm = keras.Input((CLIP_SAMPLES,), name="pcm")
    return keras.Model(pcm, classifier(MlperfMfcc(name="mfcc_frontend")(pcm)), name=name)


def export_pcm_model(model, output, labels, options=None, **changes):
    """Export a model taking 16 kHz PCM: int16 input accepted (scaled by 1/32768), audio files resampled."""
    from .. import export_model

    return export_model(model, output, options, labels=labels, int16_scale=1.0 / 32768, sample_rate=SAMPLE_RATE,
                        **changes)


REFERENCE_LIMIT = 800  # clips in a BN reference pool
REFERENCE_MAX_CLIPS = 30  # speakers with fewer clips than this form the BN reference pool (benchmark users have more)


def reference_pool(data_root=None, limit=800, seed=0):
    """PCM of Speech Commands test clips by speakers with < 30 clips, for the BN reference statistics; or None.

    Those speakers are never the per-speaker benchmark's users (who have ≥ 30 clips).
    """
    from ..datafiles import fit_audio, load_audio
    from .evaluation import speech_commands_speaker

    test = demo_data.data_root(data_root) / demo_data.SPEECH_COMMANDS_TEST
    if not test.is_dir():
        return None
    by_speaker = {}
    for label in KWS_LABELS:
        folder = test / label
        for f in sorted(folder.glob("*.wav")) if folder.is_dir() else ():
            if speech_commands_speaker(f.name):
                by_speaker.setdefault(speech_commands_speaker(f.name), []).append(f)
    pool = [f for files in by_speaker.values() if len(files) < REFERENCE_MAX_CLIPS for f in files]
    pool = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))[:limit]]
    return np.stack([fit_audio(f, *load_audio(f), (CLIP_SAMPLES,), SAMPLE_RATE) for f in pool]) if pool else None


def export_mlperf(output, data_root=None, options=None, **changes):
    """The MLPerf DS-CNN; BN reference statistics from `reference_pool` unless `reference_data` is given."""
    root = demo_data.require_data([MLPERF_KWS], data_root, "the MLPerf Tiny DS-CNN")
    options = as_options(options, **changes)
    if options.reference_data is None:
        options = options.with_changes(reference_data=reference_pool(data_root))
    return export_pcm_model(with_frontend(load_mlperf_ds_cnn(root / MLPERF_KWS)), output, KWS_LABELS, options)


def load_labelled_clips(data_dir):
    """(pcm [N, 16000], labels [N], label names, file stems [N]) from DATA_DIR/<label>/*.wav|flac, at 16 kHz."""
    from ..datafiles import AUDIO_SUFFIXES, fit_audio, load_audio

    root = pathlib.Path(data_dir)
    if not root.is_dir():
        raise InputError(f"training data folder {root} does not exist")
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    clips, labels, stems = [], [], []
    for index, name in enumerate(names):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                audio, rate = load_audio(path)
                clips.append(fit_audio(path, audio, rate, (CLIP_SAMPLES,), SAMPLE_RATE))
                labels.append(index)
                stems.append(path.stem)
    if len(set(labels)) < 2:
        raise InputError(f"{root} needs at least two <label>/ folders with audio files; found {names or 'none'}")
    return np.stack(clips), np.array(labels), tuple(names), stems


def export_trained(data_dir, output, keras_path=None, recipe=None, speaker_pattern=None, validation_fraction=0.2,
                   holdout_speakers=(), log=print, options=None, **changes):
    """Train with the recipe of `speech_training` on DATA_DIR/<label>/ clips, print its report, export."""
    from . import speakers as speaker_ids
    from .speech_training import TrainingRecipe, accuracy_report, predict, train

    recipe = recipe or TrainingRecipe()
    pcm, labels, names, stems = load_labelled_clips(data_dir)
    regex = speaker_ids.speaker_regex(speaker_pattern)
    split = speaker_ids.split_clips([speaker_ids.speaker_of(s, regex) for s in stems], validation_fraction,
                                    holdout_speakers, recipe.seed)
    log(f"{len(split.train)} training clips; {split.description}")
    result = train(pcm, labels, len(names), split.train, split.validation, recipe, log=log, label_names=names)
    report = [f"trained {result.epochs_run} epochs (at most {recipe.max_epochs}), kept epoch {result.best_epoch}; "
              f"width {recipe.width}, {result.classifier.count_params()} parameters; {result.seconds:.0f} s"]
    val_predicted = predict(result.model, pcm[split.validation]).argmax(1)
    report += accuracy_report("validation speakers " + (", ".join(split.validation_speakers) or "(random clips)"),
                              val_predicted, labels[split.validation], names)
    if len(split.held_out):
        report += accuracy_report("held-out speakers " + ", ".join(split.held_out_speakers),
                                  predict(result.model, pcm[split.held_out]).argmax(1), labels[split.held_out], names)
    log("\n".join(["held-out report:"] + report))
    if keras_path:
        result.model.save(keras_path)
    options = as_options(options, **changes)
    if options.reference_data is None:
        # The clean training clips are the BN reference pool: the export gains the normalization
        # signatures, so `Personalizer.personalize` can shift the statistics toward a user's voice.
        pool = split.train[np.random.default_rng(recipe.seed).permutation(len(split.train))[:REFERENCE_LIMIT]]
        options = options.with_changes(reference_data=pcm[np.sort(pool)])
    return export_pcm_model(result.model, output, names, options)


def add_training_options(parser):
    from .speakers import DEFAULT_SPEAKER_PATTERN
    from .speech_training import TrainingRecipe

    default = TrainingRecipe()
    parser.add_argument("--epochs", type=int, default=default.max_epochs,
                        help="at most this many epochs (early stopping usually ends sooner)")
    parser.add_argument("--patience", type=int, default=default.patience,
                        help="stop after this many epochs without a better validation accuracy")
    parser.add_argument("--width", type=float, default=default.width,
                        help="multiply the DS-CNN's channel count (1 = the MLPerf model's 64)")
    parser.add_argument("--speaker-pattern", help="regular expression searched in file names (without extension) "
                        "for the speaker id: group 'speaker', else the first group that matched; default "
                        f"{DEFAULT_SPEAKER_PATTERN!r} (Speech Commands and FSDD names)")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help="share of the clips (whole speakers where known) used for validation")
    parser.add_argument("--holdout-speakers", type=lambda text: tuple(s for s in text.split(",") if s), default=(),
                        help="comma-separated speaker ids left out of training and validation and reported apart")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--no-bn-recalibration", action="store_true",
                        help="keep the training-mode BatchNorm statistics")
    parser.add_argument("--stem-dropout", type=float, default=default.stem_dropout,
                        help="dropout rate after the stem (0 removes the layer)")
    parser.add_argument("--seed", type=int, default=default.seed,
                        help="random seed of the validation split, the initial weights and the augmentation")
    parser.add_argument("--init-from", metavar="PATH",
                        help="start from a pretrained model's weights (transfer learning): a local MLPerf Tiny KWS "
                        "SavedModel folder or a .keras file saved by `train --keras`; the output layer is new when "
                        "the number of classes differs")
    parser.add_argument("--reuse-outputs", action="store_true",
                        help="with --init-from an MLPerf SavedModel: start the output layer from its outputs of the "
                        "same label names (every label must be one of its 12) instead of a new one")
    parser.add_argument("--learning-rate", type=float,
                        help="Adam's initial learning rate, halved on validation plateaus (default 2e-3; 5e-4 with "
                        "--init-from)")


def recipe_from(args):
    from .speech_training import TrainingRecipe

    if args.epochs < 1 or args.patience < 1:
        raise FinePruneError(f"--epochs and --patience must be at least 1, got {args.epochs} and {args.patience}")
    if args.reuse_outputs and not args.init_from:
        raise FinePruneError("--reuse-outputs needs --init-from (the pretrained model whose outputs it reuses)")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise FinePruneError(f"--learning-rate must be positive, got {args.learning_rate}")
    return TrainingRecipe(max_epochs=args.epochs, patience=args.patience, width=args.width, augment=not args.no_augment,
                  recalibrate_bn=not args.no_bn_recalibration, stem_dropout=args.stem_dropout, seed=args.seed,
                  learning_rate=args.learning_rate, init_from=args.init_from, reuse_outputs=args.reuse_outputs)


def main(argv=None):
    parser, commands = command_parser("python -m tflite_fineprune.converters.speech", __doc__)
    p = add_export_command(commands, "mlperf", "MLPerf Tiny DS-CNN with the MFCC front-end")
    p.add_argument("--data", help="demo data folder (default: $FINEPRUNE_DATA, else the one "
                   "`tflite-fineprune data fetch` fills)")
    p = add_export_command(commands, "train", "train a DS-CNN-style model on DATA_DIR/<label>/*.wav and export it "
                           "(recipe: docs/training.md)")
    p.add_argument("data_dir", help="a folder of <label>/ folders holding .wav/.flac clips")
    p.add_argument("--keras", help="also save the trained Keras model here")
    add_training_options(p)
    args = parser.parse_args(argv)

    def action():
        if args.command == "mlperf":
            print(export_mlperf(args.output, args.data, export_options(args)))
        else:
            print(export_trained(args.data_dir, args.output, args.keras, recipe_from(args), args.speaker_pattern,
                                 args.validation_fraction, args.holdout_speakers, options=export_options(args)))

    return run_command(parser.prog, action)


if __name__ == "__main__":
    sys.exit(main())
