"""Names of the signatures, and of their inputs and outputs, in every export.

Export and runtime (and the Android app) agree on these names; they are part
of the file format.
"""

INFER = "infer"
COLLECT = "collect"
PRUNE = "prune"
PRUNE_OUTPUTS = "prune_outputs"
RESET = "reset"
GET_STATE = "get_state"
SET_STATE = "set_state"
SET_COMPENSATION = "set_compensation"  # mean-compensated models
UPDATE_PRIORS = "update_priors"  # prior-corrected models: one EM step
SET_PRIORS = "set_priors"  # prior-corrected models
PRUNE_DORMANT = "prune_dormant"  # prune hidden units whose activity is below a threshold
ADAPT_NORMALIZATION = "adapt_normalization"  # models with normalization statistics: relative AdaBN
SET_NORMALIZATION = "set_normalization"  # models with normalization statistics
ADAPT_CLASSIFIER = "adapt_classifier"  # models with classifier prototypes: blend the final kernel toward them (T3A)
SET_PROTOTYPES = "set_prototypes"  # models with classifier prototypes

REQUIRED = (INFER, COLLECT, PRUNE, RESET, GET_STATE, SET_STATE)

INPUT = "x"
OUTPUT = "output"
SPARSITY = "sparsity"
MIN_FRACTION = "min_fraction"
CLEAR_COUNTS = "clear_counts"
CLEAR_MASKS = "clear_masks"
TOKEN = "token"
MASKS = "masks"
COUNTS = "counts"
SAMPLES = "samples"
SUMS = "sums"  # mean-compensated models only: summed per-sample mean activation
FILL = "fill"  # mean-compensated models only: the constant output of each pruned unit
LOG_WEIGHTS = "log_weights"  # prior-corrected models: log(user prior / training prior) per class
SOFT_COUNTS = "soft_counts"  # prior-corrected models: summed class posteriors since the last EM step
THRESHOLD = "threshold"  # prune_dormant: the activity below which a hidden unit is pruned
STRENGTH = "strength"  # adapt_normalization: 0 = trained statistics, 1 = fully shifted by the user's data
NORM_SUMS = "norm_sums"  # per BN channel: sum of (input - trained mean) over samples and positions
NORM_SQUARES = "norm_squares"  # per BN channel: sum of (input - trained mean)²
NORM_COUNT = "norm_count"  # per BN channel: number of values summed
NORM_MEAN = "norm_mean"  # per BN channel: the mean the model uses now
NORM_VAR = "norm_var"  # per BN channel: the variance the model uses now
# collect's optional second output, per sample: how far its BN inputs sit from the reference pool's, as a multiple
# of the reference pool's 95th percentile (> 1: atypical; open_set.py). Exports before issue 22 lack it.
TYPICALITY = "typicality"
PROTO_SUMS = "proto_sums"  # prototypes: per class c, Σ w_ic f_i/‖f_i‖ over confident samples (C × D, class-major)
PROTO_COUNTS = "proto_counts"  # prototypes: per class, Σ w_ic (C)
HEAD_KERNEL = "head_kernel"  # prototypes: the final Dense kernel in use (D × C, Keras layout, row-major)

PRUNE_MAGNITUDE = "prune_magnitude"  # prune by mean |activation| × outgoing weight norm (magnitude pruning)
SET_MAGNITUDES = "set_magnitudes"  # magnitude pruning: restore the accumulated magnitudes
MAGNITUDES = "magnitudes"  # magnitude pruning: per unit, summed per-sample mean |activation|
