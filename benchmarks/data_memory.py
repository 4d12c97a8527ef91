"""Peak resident memory of `tflite-fineprune personalize` on a folder of many tiny WAV files.

An audio model exported with a sample rate (the zoo's Conv1D, 16000 samples at 16 kHz) pads each one-sample WAV
to a 16000-sample clip (64 kB as float32). The command runs in a fresh process for each folder size; the process
prints its peak resident memory (VmHWM, Linux). `--code DIR` runs the command from another checkout (e.g. the
main branch before the folder was streamed) to compare.

usage: python benchmarks/data_memory.py [--files 1000,10000] [--code DIR] [--auto]
`--auto`: the automatic call (several passes over the data) instead of `--sparsity 0` (one pass).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import wave

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Runs the command's main() and reports the process's peak resident memory on stderr.
# (VmHWM from /proc, not ru_maxrss: Linux carries ru_maxrss over from the parent that started the process.)
RUNNER = ("import sys\n"
          "from tflite_fineprune.cli import main\n"
          "code = main(sys.argv[1:])\n"
          "peak = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')][0]\n"
          "print('PEAK_RSS_KIB', peak, file=sys.stderr)\n"
          "sys.exit(code)\n")


def one_sample_wavs(folder, count):
    folder.mkdir()
    for i in range(count):
        with wave.open(str(folder / f"clip{i:06d}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes((1000 + i % 1000).to_bytes(2, "little"))


def measure(code, model, data, state, auto):
    flags = [] if auto else ["--sparsity", "0"]
    env = dict(os.environ, PYTHONPATH=str(code))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", RUNNER, "personalize", str(model), "--data", str(data),
                             "--state", str(state), *flags], capture_output=True, text=True, env=env,
                            cwd=code)  # `python -c` puts the working folder first on sys.path
    seconds = time.perf_counter() - start
    peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KIB")]
    if result.returncode != 0 or not peak:
        raise SystemExit(f"the command failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return int(peak[0].split()[1]) / 1024, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="1000,10000", help="folder sizes, comma-separated")
    parser.add_argument("--code", default=str(REPO), help="the checkout whose tflite_fineprune runs the command")
    parser.add_argument("--auto", action="store_true", help="the automatic call instead of --sparsity 0")
    args = parser.parse_args()
    from tests import zoo
    from tflite_fineprune import export_model

    with tempfile.TemporaryDirectory() as workdir:
        work = pathlib.Path(workdir)
        model = work / "audio.tflite"
        export_model(zoo.conv1d_audio(), model, sample_rate=16000)
        print(f"code: {args.code}; {'automatic' if args.auto else '--sparsity 0'}")
        for count in (int(c) for c in args.files.split(",")):
            data = work / f"wavs{count}"
            one_sample_wavs(data, count)
            peak, seconds = measure(args.code, model, data, work / f"{count}.state", args.auto)
            print(f"{count:>7} one-sample WAVs: peak RSS {peak:7.0f} MiB, {seconds:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
