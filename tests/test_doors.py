"""Locks on the doors (issue 21): nothing a user owns is replaced, special files never hang a command, a folder is
read a batch at a time, file names cannot break or forge output, and missing pieces (TensorFlow, a writable
TMPDIR) give one line. Real exports, real files (FIFOs, sockets, symlinks, read-only mounts) and real processes.
"""

import functools
import os
import socket
import subprocess
import sys
import wave

import numpy as np
import pytest

from tests.cli import error_lines, run_cli
from tflite_fineprune import FinePruneError, Personalizer
from tflite_fineprune.folderdata import FolderData
from tflite_fineprune.runtime import NonFiniteActivity
from tflite_fineprune.state import MAGIC

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F32_MAX = np.finfo(np.float32).max

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFOs, sockets, /proc and mounts")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small Dense model, exported for real (prune_magnitude and every runtime signature)."""
    import keras
    from keras import layers

    from tflite_fineprune import export_model

    net = keras.Sequential([keras.Input((6,)), layers.Dense(12, activation="relu"),
                            layers.Dense(10, activation="relu"), layers.Dense(4)])
    path = tmp_path_factory.mktemp("doors") / "dense.tflite"
    export_model(net, path)
    return path


# Bytes in and out: arguments may be file names that are not UTF-8.
cli = functools.partial(run_cli, text=False, timeout=120)


def text(stream):
    return stream.decode("utf-8", "replace")


def one_error_line(result):
    lines = error_lines(text(result.stderr))
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("tflite-fineprune: error:"), \
        text(result.stderr)
    assert "Traceback" not in text(result.stderr)
    return lines[0]


def user_folder(root, count=20, seed=0):
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "a.npy", np.random.default_rng(seed).standard_normal((count, 6)).astype(np.float32))
    return root


# -- nothing a user owns is replaced ----------------------------------------------------------------------------

def test_the_model_or_any_non_state_file_is_never_replaced_by_a_state(model, tmp_path):
    data = user_folder(tmp_path / "user")
    before = model.read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    fifo = tmp_path / "pipe.state"
    os.mkfifo(fifo)
    for target in (model, notes, data / "a.npy", fifo):
        for fresh in ((), ("--fresh",)):
            line = one_error_line(cli("personalize", model, "--data", data, "--state", target, *fresh))
            assert ("is the model itself" if target == model else "is not a tflite-fineprune state file") in line
    with pytest.raises(FinePruneError, match="the model file itself"):  # the library refuses it too
        Personalizer(model).save_state(model)
    assert model.read_bytes() == before and notes.read_text() == "my notes\n" and fifo.is_fifo()
    # A damaged state file is still a state file: --fresh replaces it (as it replaces another model's).
    damaged = tmp_path / "damaged.state"
    damaged.write_bytes(MAGIC + b"\0" * 20)
    assert "--fresh" in one_error_line(cli("personalize", model, "--data", data, "--state", damaged))
    replaced = cli("personalize", model, "--data", data, "--state", damaged, "--fresh")
    assert replaced.returncode == 0, text(replaced.stderr)
    Personalizer(model).load_state(damaged)


def test_a_symlinked_state_is_written_through_to_its_target(model, tmp_path):
    data = user_folder(tmp_path / "user")
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "me.state"
    link = tmp_path / "me.state"
    link.symlink_to(target)
    for _ in range(2):  # a new target, then a replaced one
        result = cli("personalize", model, "--data", data, "--state", link, "--sparsity", "0.2")
        assert result.returncode == 0, text(result.stderr)
        assert link.is_symlink() and os.readlink(link) == str(target) and target.is_file()
    user = Personalizer(model)
    user.load_state(link)
    assert user.samples == 20 and user.sparsity().pruned_units > 0
    assert sorted(os.listdir(tmp_path / "real")) == ["me.state"]  # no temp file left beside the target


def test_slim_and_export_never_replace_their_inputs_or_other_files(model, tmp_path):
    user = Personalizer(model)
    user.observe(np.random.default_rng(1).standard_normal((20, 6)).astype(np.float32))
    user.prune(0.3)
    state = tmp_path / "me.state"
    user.save_state(state)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    saved = {path: path.read_bytes() for path in (model, state, notes)}
    for output, says in ((model, "same file as the model"), (state, "same file as --state"),
                         (notes, "is not a .tflite file")):
        assert says in one_error_line(cli("slim", model, "--state", state, "-o", output))
    keras_file = tmp_path / "net.keras"
    keras_file.write_bytes(b"PK\3\4 a Keras archive")
    saved[keras_file] = keras_file.read_bytes()
    assert "same file as the Keras model" in one_error_line(cli("export", keras_file, "-o", keras_file))
    assert "does not exist" in one_error_line(cli("export", keras_file, "-o", tmp_path / "nowhere" / "m.tflite"))
    assert {path: path.read_bytes() for path in saved} == saved
    slimmed = cli("slim", model, "--state", state, "-o", tmp_path / "slim.tflite")  # the normal case still works
    assert slimmed.returncode == 0, text(slimmed.stderr)
    again = cli("slim", model, "--state", state, "-o", tmp_path / "slim.tflite")  # and a .tflite is replaced
    assert again.returncode == 0, text(again.stderr)


# -- output folders are checked before the work -------------------------------------------------------------------

def marker_hook(tmp_path):
    """A preprocess hook that leaves a file when the data is read: proof of what ran before an error."""
    (tmp_path / "marker_hook.py").write_text(
        "import os\n\ndef mark(raw, path):\n"
        f"    open({str(tmp_path / 'data-was-read')!r}, 'w').close()\n    return raw\n")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))


def run_with_readonly(folder, argv, env):
    """`argv` with `folder` read-only: by its mode bits, or (as root, whom mode bits do not stop) a read-only bind
    mount in a private mount namespace."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(argv, capture_output=True, timeout=120, env=env)
        finally:
            folder.chmod(0o755)
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("root without a private mount namespace: cannot make a folder read-only")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, str(folder), *argv], capture_output=True,
                          timeout=120, env=env)


def test_a_missing_or_read_only_output_folder_is_refused_before_the_data_is_read(model, tmp_path):
    data = user_folder(tmp_path / "user")
    env = marker_hook(tmp_path)
    hook = ("--preprocess", "marker_hook:mark")
    line = one_error_line(cli("personalize", model, "--data", data, "--state", tmp_path / "nowhere" / "me.state",
                              *hook, env=env))
    assert "does not exist" in line and not (tmp_path / "data-was-read").exists()
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    argv = [sys.executable, "-m", "tflite_fineprune", "personalize", str(model), "--data", str(data),
            "--state", str(readonly / "me.state"), *hook]
    line = one_error_line(run_with_readonly(readonly, argv, env))
    assert "is not writable" in line and not (tmp_path / "data-was-read").exists()
    assert "does not exist" in one_error_line(cli("slim", model, "--state", tmp_path / "x.state",
                                                  "-o", tmp_path / "nowhere" / "s.tflite"))
    ok = cli("personalize", model, "--data", data, "--state", tmp_path / "me.state", *hook, env=env)
    assert ok.returncode == 0 and (tmp_path / "data-was-read").exists(), text(ok.stderr)


# -- --data: only regular files, unreadable ones skipped and said ------------------------------------------------

def test_pipes_sockets_and_devices_in_data_are_skipped_never_waited_on(model, tmp_path):
    data = user_folder(tmp_path / "user")
    os.mkfifo(data / "x.wav")
    os.mkfifo(data / "x.npy")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(data / "s.npy"))
    (data / "zero.npy").symlink_to("/dev/zero")
    (data / "broken.npy").write_bytes(b"not an array")
    try:
        result = cli("personalize", model, "--data", data, "--state", tmp_path / "me.state", "--sparsity", "0.1",
                     timeout=60)
    finally:
        server.close()
    out = text(result.stdout)
    assert result.returncode == 0, text(result.stderr)
    notes = [line for line in out.splitlines() if "could not be read" in line]
    assert len(notes) == 1 and notes[0].startswith("note: skipped 5 files"), out
    assert "is not a regular file" in notes[0] and "and 2 more" in notes[0]
    assert "observed 20 samples from 1 files" in out


def test_a_folder_with_nothing_readable_is_one_line_naming_the_files(model, tmp_path):
    data = tmp_path / "user"
    data.mkdir()
    os.mkfifo(data / "a.npy")
    (data / "b.npy").write_bytes(b"junk")
    line = one_error_line(cli("personalize", model, "--data", data, "--state", tmp_path / "me.state", timeout=60))
    assert "no file of data folder" in line and "a.npy is not a regular file" in line
    assert "b.npy is not a readable .npy array" in line and not (tmp_path / "me.state").exists()


def test_folder_batches_are_the_same_on_every_pass_cached_or_read_again(tmp_path):
    for label in ("0", "1", "2"):
        folder = tmp_path / label
        folder.mkdir()
        for i in range(3):
            np.save(folder / f"{i}.npy", np.full((i + 1, 6), 10 * int(label) + i, np.float32))
    (tmp_path / "1" / "junk.npy").write_bytes(b"junk")
    notes = []
    for cache in (0, 1 << 20):
        data = FolderData(tmp_path, (6,), labels=[], batch_size=4, notes=notes.append, cache_bytes=cache)
        passes = [[(x.copy(), y.copy()) for x, y, _ in data.labeled()] for _ in range(3)]
        assert data.samples == 18 and len(data.files) == 9 and len(data.skipped) == 1
        first = passes[0]
        assert [len(x) for x, _ in first] == [4, 4, 4, 4, 2]
        x, y = np.concatenate([b[0] for b in first]), np.concatenate([b[1] for b in first])
        assert np.array_equal(x[:, 0] // 10, y)  # every sample keeps its own file's label
        for again in passes[1:]:
            assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert sum("could not be read" in note for note in notes) == 2  # once per FolderData, on its first pass


def one_sample_wavs(folder, count):
    folder.mkdir()
    for i in range(count):
        with wave.open(str(folder / f"c{i:05d}.wav"), "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(16000)
            f.writeframes((1000 + i % 100).to_bytes(2, "little"))


PEAK = ("import sys\nfrom tflite_fineprune.cli import main\ncode = main(sys.argv[1:])\n"
        "print('PEAK', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0], "
        "file=sys.stderr)\nsys.exit(code)\n")


def peak_mib(model, data, state):
    result = subprocess.run([sys.executable, "-c", PEAK, "personalize", str(model), "--data", str(data),
                             "--state", str(state), "--sparsity", "0"], capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    return int([line for line in result.stderr.splitlines() if line.startswith("PEAK")][0].split()[1]) / 1024


@pytest.mark.slow
def test_memory_is_bounded_by_a_batch_not_by_the_folder(exports, tmp_path):
    """3,000 one-sample WAVs become 3,000 padded 64 kB clips (192 MB; held twice before: 384 MB more than 100)."""
    model = exports.path("conv1d_audio", sample_rate=16000)
    one_sample_wavs(tmp_path / "few", 100)
    one_sample_wavs(tmp_path / "many", 3000)
    few = peak_mib(model, tmp_path / "few", tmp_path / "few.state")
    many = peak_mib(model, tmp_path / "many", tmp_path / "many.state")
    assert many - few < 96, (few, many)  # the cache of decoded batches is capped at 64 MiB
    user = Personalizer(model)
    user.load_state(tmp_path / "many.state")
    assert user.samples == 3000


# -- file names cannot break or forge the output -------------------------------------------------------------------

def test_a_non_utf8_file_name_with_a_strict_utf8_stdout(model, tmp_path):
    data = user_folder(tmp_path / "user")
    with open(os.path.join(os.fsencode(data), b"bad\xff.npy"), "wb") as f:
        f.write(b"junk")
    state = os.path.join(os.fsencode(tmp_path), b"st\xfe.state")
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    result = cli("personalize", model, "--data", data, "--state", state, "--sparsity", "0.1", env=env)
    assert result.returncode == 0, text(result.stderr)
    out = result.stdout.decode("utf-8")  # strict: all of it is UTF-8
    assert "bad\\xff.npy is not a readable .npy array" in out and "state saved to" in out and "st\\xfe.state" in out
    assert os.path.exists(state)


def test_a_newline_in_a_file_name_cannot_forge_an_error_line(model, tmp_path):
    data = tmp_path / "user"
    data.mkdir()
    (data / "x\ntflite-fineprune: error: forged.npy").write_bytes(b"junk")
    line = one_error_line(cli("personalize", model, "--data", data, "--state", tmp_path / "me.state"))
    assert "x\\ntflite-fineprune: error: forged.npy" in line
    user_folder(data)
    result = cli("personalize", model, "--data", data, "--state", tmp_path / "me.state")
    assert result.returncode == 0 and "x\\ntflite-fineprune" in text(result.stdout)
    assert not any(line.startswith("tflite-fineprune: error") for line in text(result.stdout).splitlines())


# -- missing pieces: TensorFlow, a writable temporary folder -------------------------------------------------------

HIDE_TENSORFLOW = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
from tflite_fineprune.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_export_without_tensorflow_names_the_extra(tmp_path):
    keras_file = tmp_path / "net.keras"
    keras_file.write_bytes(b"PK\3\4")
    result = subprocess.run([sys.executable, "-c", HIDE_TENSORFLOW, "export", str(keras_file),
                             "-o", str(tmp_path / "net.tflite")], capture_output=True, timeout=120, cwd=REPO)
    line = one_error_line(result)
    assert "needs TensorFlow" in line and 'pip install ".[export]"' in line
    assert not (tmp_path / "net.tflite").exists()


def test_commands_run_where_no_temporary_folder_is_writable(model, tmp_path):
    """TMPDIR, /tmp, /var/tmp and the working folder read-only (a private mount namespace): no temp file needed."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespace here")
    data = user_folder(tmp_path / "user")
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "tmpdir").mkdir()
    folders = " ".join(dict.fromkeys(["/tmp", "/var/tmp", str(tmp_path)]))
    script = (f'mount --bind "{out}" "{out}" || exit 90\n'
              f'for d in {folders}; do mount --rbind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 91; done\n'
              'exec "$@"')
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmpdir"), PYTHONPATH=REPO)

    def run(*argv):
        return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *argv], capture_output=True, timeout=120,
                              env=env, cwd=tmp_path)

    no_temp = run(sys.executable, "-c", "import tempfile; tempfile.TemporaryFile()")
    assert no_temp.returncode == 1 and b"No usable temporary directory" in no_temp.stderr, no_temp.stderr
    result = run(sys.executable, "-m", "tflite_fineprune", "personalize", str(model), "--data", str(data),
                 "--state", str(out / "me.state"))
    assert result.returncode == 0, text(result.stderr)
    assert (out / "me.state").exists()
    assert run(sys.executable, "-m", "tflite_fineprune", "inspect", str(model)).returncode == 0


# -- inputs that overflow inside the model -----------------------------------------------------------------------

def test_float32_max_inputs_are_refused_at_observe_and_nothing_is_counted(model, tmp_path):
    user = Personalizer(model)
    user.observe(np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32))
    before = user.get_state()
    huge = np.full((8, 6), F32_MAX, np.float32)
    with pytest.raises(NonFiniteActivity, match="batch 1 of the input .* overflowed inside the model"):
        user.observe(np.concatenate([np.ones((4, 6), np.float32), huge]), batch_size=4)
    after = user.get_state()
    assert after.samples == before.samples == 20 and np.array_equal(after.counts, before.counts)
    user.save_state(tmp_path / "me.state")  # still saveable: the sums were rolled back
    user.load_state(tmp_path / "me.state")
    with pytest.raises(FinePruneError):
        user.personalize(huge)
    data = user_folder(tmp_path / "user")
    np.save(data / "huge.npy", huge)
    line = one_error_line(cli("personalize", model, "--data", data, "--state", tmp_path / "cli.state"))
    assert "overflowed inside the model" in line and "huge.npy" in line
    assert not (tmp_path / "cli.state").exists()
