"""The keyword-model training recipe: speaker-disjoint validation, augmentation, early stopping, BN recalibration.

Why each step (docs/training.md has the measurements):

* validation on speakers the model never trains on — the only honest estimate of
  how it does for a new user, and what early stopping must watch;
* augmentation in training only (time shift, noise at a random SNR, SpecAugment
  masks on the MFCCs) — a few thousand clips of a few dozen speakers are easy to
  memorize;
* early stopping on validation accuracy, best weights kept — `epochs` is a maximum;
  the learning rate halves after `patience // 2` epochs without improvement;
* optionally (`init_from`), transfer: start from a pretrained keyword model's
  weights (all but a differently sized output layer) and fine-tune them all;
* BatchNorm statistics re-estimated in inference mode on the clean training clips
  after every epoch (and so in the model that is kept): training-mode statistics are
  measured through Dropout and on augmented audio, so the stored moving variances
  come out too large for clean inference-mode inputs (measured 1.5–2x), which cost
  over 20 points of held-out accuracy.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from .augment import RandomNoise, RandomTimeShift, SpecAugment
from .frontend import CLIP_SAMPLES, MlperfMfcc
from ..errors import FinePruneError, ModelError

BATCH_SIZE = 32
LEARNING_RATE = 2e-3
TRANSFER_LEARNING_RATE = 5e-4  # fine-tuning pretrained weights: 2e-3 undid part of what they knew (85 % vs 90 %)


@dataclasses.dataclass
class TrainingRecipe:
    max_epochs: int = 60
    patience: int = 10
    width: float = 1.0
    augment: bool = True
    recalibrate_bn: bool = True
    stem_dropout: float = 0.2
    learning_rate: float = None  # None: 2e-3 from scratch, 5e-4 with init_from (measured: docs/training.md)
    seed: int = 0
    init_from: str = None  # a local MLPerf Tiny KWS SavedModel folder or a `--keras` file: transfer learning
    reuse_outputs: bool = False  # with an MLPerf SavedModel: start the output layer from its same-named outputs


def keyword_model(num_classes, recipe):
    """PCM → [augmentation] → MFCC → [SpecAugment] → DS-CNN; returns (model, classifier)."""
    from .kws_model import DS_CNN_FILTERS, ds_cnn

    if recipe.width <= 0:
        raise FinePruneError(f"--width must be positive, got {recipe.width}")
    filters = max(1, int(round(DS_CNN_FILTERS * recipe.width)))
    classifier = ds_cnn(num_classes, filters=filters, stem_dropout=recipe.stem_dropout, name="ds_cnn_keywords")
    pcm = keras.Input((CLIP_SAMPLES,), name="pcm")
    x = pcm
    if recipe.augment:
        x = RandomTimeShift(seed=recipe.seed, name="time_shift")(x)
        x = RandomNoise(seed=recipe.seed + 1, name="noise")(x)
    x = MlperfMfcc(name="mfcc_frontend")(x)
    if recipe.augment:
        x = SpecAugment(seed=recipe.seed + 2, name="spec_augment")(x)
    return keras.Model(pcm, classifier(x), name="kws"), classifier


def pretrained_classifier(path):
    """The DS-CNN of a local MLPerf Tiny KWS SavedModel folder, or the classifier inside a saved `.keras` model."""
    from .kws_model import load_mlperf_ds_cnn

    path = os.fspath(path)
    if os.path.isdir(path):
        return load_mlperf_ds_cnn(path)
    if not path.endswith(".keras") or not os.path.isfile(path):
        raise FinePruneError(f"--init-from expects an MLPerf Tiny KWS SavedModel folder or a .keras file saved by "
                             f"`train --keras`, got {path!r}")
    from . import augment  # noqa: F401  (registers the augmentation layers the saved model may hold)

    model = keras.models.load_model(path, compile=False)
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    candidates = [m for m in inner + [model] if any(layer.name == "stem_conv" for layer in m.layers)]
    if not candidates:
        raise ModelError(f"{path} holds no DS-CNN (no layer named 'stem_conv'); expected a model saved by "
                         "`python -m tflite_fineprune.converters.speech train --keras`")
    return candidates[0]


def transfer_weights(source, target, log=print, source_labels=None, target_labels=None):
    """Copy `source`'s weights into `target`'s layers of the same name; a differently shaped output layer stays new.

    Every weighted layer except the output (`classes`) must be present with the same
    shapes: a transfer that silently kept random layers would not be a transfer. With
    both label lists given and every target label among the source's, the output layer
    starts from the source's outputs of the same names instead (words it already knows).
    """
    by_name = {layer.name: layer for layer in source.layers if layer.weights}
    for layer in target.layers:
        if not layer.weights:
            continue
        origin = by_name.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        found = [tuple(w.shape) for w in origin.weights] if origin is not None else None
        if layer.name == "classes" and source_labels and target_labels:  # by name, whatever the shapes
            if set(target_labels) <= set(source_labels):
                rows = [list(source_labels).index(name) for name in target_labels]
                kernel, bias = origin.get_weights()
                layer.set_weights([kernel[:, rows], bias[rows]])
                log(f"init: output layer 'classes' from the pretrained outputs {', '.join(target_labels)}")
                continue
            raise ModelError(f"--reuse-outputs needs every label among the pretrained model's "
                             f"{', '.join(source_labels)}; these are not: "
                             f"{', '.join(sorted(set(target_labels) - set(source_labels)))}")
        if layer.name == "classes" and found != shapes:
            log(f"init: output layer 'classes' {shapes[0]} is new (the pretrained one is {found and found[0]})")
            continue
        if found != shapes:
            raise ModelError(f"--init-from model does not fit layer {layer.name!r}: it has shapes {found}, the "
                             f"model being trained needs {shapes} (same --width as the pretrained model?)")
        layer.set_weights(origin.get_weights())


def mfcc_features(pcm, batch=256):
    """The front-end's features, computed once for the clips that are only ever seen in inference mode."""
    frontend = MlperfMfcc()
    return np.concatenate([np.asarray(frontend(pcm[i:i + batch])) for i in range(0, len(pcm), batch)])


def recalibrate_batchnorm(classifier, features):
    """Set every BatchNormalization's moving statistics to those of its input in inference mode.

    One pass, layer by layer in order: each BN layer sees its input as computed with
    the earlier layers already recalibrated. `classifier` must be a chain of layers
    (as the DS-CNN is).
    """
    x = features
    for layer in classifier.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            axes = tuple(range(x.ndim - 1))
            layer.moving_mean.assign(x.mean(axis=axes))
            layer.moving_variance.assign(x.var(axis=axes))
        x = np.asarray(layer(x, training=False))
    return x


def predict(classifier, features, batch=512):
    return np.concatenate([np.asarray(classifier(features[i:i + batch], training=False))
                           for i in range(0, len(features), batch)])


class BestOnValidation(keras.callbacks.Callback):
    """After each epoch: recalibrate BN, score the validation speakers, keep the best weights, stop on patience."""

    def __init__(self, classifier, train_features, val_features, val_labels, patience, recalibrate, log=print,
                 augmented=True):
        super().__init__()
        self.classifier, self.train_features = classifier, train_features
        self.val_features, self.val_labels = val_features, val_labels
        self.patience, self.recalibrate, self.log = patience, recalibrate, log
        self.best_accuracy, self.best_epoch, self.best_weights, self.epochs_run = -1.0, 0, None, 0
        self.history = []
        self.last_reduction = 0
        self.train_note = " (augmented)" if augmented else ""

    def on_epoch_end(self, epoch, logs=None):
        if self.recalibrate:
            recalibrate_batchnorm(self.classifier, self.train_features)
        accuracy = float(np.mean(predict(self.classifier, self.val_features).argmax(1) == self.val_labels))
        self.epochs_run = epoch + 1
        self.history.append(accuracy)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch + 1
            self.best_weights = self.model.get_weights()
        self.log(f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.3f}, train accuracy "
                 f"{logs.get('accuracy', float('nan')):.3f}{self.train_note}, validation {accuracy:.3f} "
                 f"(best {self.best_accuracy:.3f} at epoch {self.best_epoch})")
        stalled = epoch + 1 - max(self.best_epoch, self.last_reduction)
        if epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True
        elif stalled >= max(1, self.patience // 2):
            # Halve the learning rate on a plateau: small data sets give few steps per epoch and noisy scores.
            rate = self.model.optimizer.learning_rate
            rate.assign(rate * 0.5)
            self.last_reduction = epoch + 1
            self.log(f"validation has not improved for {stalled} epochs: learning rate {float(rate.numpy()):.2e}")

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


@dataclasses.dataclass
class TrainingResult:
    model: keras.Model
    classifier: keras.Model
    epochs_run: int
    best_epoch: int
    best_validation_accuracy: float
    seconds: float


def train(pcm, labels, num_classes, train_index, val_index, recipe, verbose=0, log=print, label_names=None):
    """Train on `train_index` clips, early-stop on `val_index` clips; the model returned holds the best weights."""
    start = time.perf_counter()
    keras.utils.set_random_seed(recipe.seed)
    model, classifier = keyword_model(num_classes, recipe)
    if recipe.init_from:
        from .kws_model import KWS_LABELS

        if recipe.reuse_outputs and not os.path.isdir(recipe.init_from):
            raise FinePruneError("--reuse-outputs needs --init-from to name an MLPerf Tiny KWS SavedModel folder "
                                 f"(whose 12 labels are known), got {recipe.init_from!r}")
        reuse = (KWS_LABELS, label_names) if recipe.reuse_outputs else (None, None)
        transfer_weights(pretrained_classifier(recipe.init_from), classifier, log, *reuse)
        log(f"init: weights from {recipe.init_from}")
    rate = recipe.learning_rate or (TRANSFER_LEARNING_RATE if recipe.init_from else LEARNING_RATE)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    train_pcm, train_labels = pcm[train_index], labels[train_index]
    monitor = BestOnValidation(classifier, mfcc_features(train_pcm), mfcc_features(pcm[val_index]),
                               labels[val_index], recipe.patience, recipe.recalibrate_bn, log, recipe.augment)
    model.fit(train_pcm, train_labels, batch_size=BATCH_SIZE, epochs=recipe.max_epochs, shuffle=True,
              verbose=verbose, callbacks=[monitor])
    return TrainingResult(model, classifier, monitor.epochs_run, monitor.best_epoch, monitor.best_accuracy,
                          time.perf_counter() - start)


def accuracy_report(title, predicted, truth, names):
    """Lines: overall accuracy, then one per class present."""
    lines = [f"{title}: accuracy {np.mean(predicted == truth):.4f} on {len(truth)} clips"]
    for index, name in enumerate(names):
        chosen = truth == index
        if chosen.any():
            lines.append(f"  {name:>12}  {np.mean(predicted[chosen] == index):.3f}  ({int(chosen.sum())} clips)")
    return lines
