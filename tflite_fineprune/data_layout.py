"""What the demo data folder holds: its parts' relative paths, what each is, and CIFAR-10's labels.

Shared by demo_data.py (where the folder is) and data_sources.py (where each part is downloaded from).
"""

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# What the shared data folder holds, and where each part comes from publicly (docs/data.md has the layout).
SPEECH_COMMANDS_TEST = "speech_commands_v0.02_test"
MLPERF_KWS = "mlperf_tiny/keyword_spotting/kws_ref_model"
MLPERF_RESNET8 = "mlperf_tiny/image_classification/pretrainedResnet.h5"
CIFAR10_TEST = "cifar10_test"
FSDD = "fsdd/recordings"
DESCRIPTIONS = {
    SPEECH_COMMANDS_TEST: "the Google Speech Commands v0.02 test split (<label>/<speaker>_nohash_<n>.wav)",
    MLPERF_KWS: "the MLPerf Tiny keyword-spotting DS-CNN SavedModel",
    MLPERF_RESNET8: "the MLPerf Tiny ResNet-8 (pretrainedResnet.h5)",
    CIFAR10_TEST: "the CIFAR-10 test images (<class>/<n>.jpg)",
    FSDD: "the Free Spoken Digit Dataset recordings (<digit>_<speaker>_<n>.wav)",
}
