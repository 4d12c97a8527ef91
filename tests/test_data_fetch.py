"""`tflite-fineprune data fetch` against a local HTTP server serving small archives in the upstream formats.

No test downloads anything: the server (127.0.0.1, an ephemeral port, Range requests supported) serves a tar.gz
of WAV folders like the Speech Commands test split, CIFAR-10's python pickles in a tar.gz, a GitHub-style zip of
FSDD recordings and plain model files; the table is the real one with this server's URLs and these archives'
checksums.
"""

import dataclasses
import hashlib
import http.server
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest
import soundfile

from tests.cli import run_cli
from tflite_fineprune import FinePruneError, data_fetch, demo_data
from tflite_fineprune.cli import main
from tflite_fineprune.data_sources import DATASETS, FSDD_TAG, tree_sha256

RATE = 16000
LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "_silence_", "_unknown_")


def wav_bytes(seed, seconds=0.1, rate=RATE):
    buffer = io.BytesIO()
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    soundfile.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def speech_archive():
    members = {"./LICENSE": b"CC BY 4.0\n", "./README.md": b"test split\n"}
    for i, label in enumerate(LABELS):
        name = f"{i:02d}_0" if label == "_silence_" else f"{'bed_' if label == '_unknown_' else ''}0a{i:06x}_nohash_0"
        members[f"./{label}/{name}.wav"] = wav_bytes(i)
    return tar_gz(members)


CIFAR_NAMES = (b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck")


def cifar_images():
    rng = np.random.default_rng(0)
    labels = [i % 10 for i in range(30)]
    return rng.integers(0, 256, (30, 3072), dtype=np.uint8), labels


def py2_style_pickle(value):
    """Protocol 2, with numpy arrays rebuilt through `numpy.core.multiarray` as in the published (Python 2) files."""
    return pickle.dumps(value, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_archive():
    data, labels = cifar_images()
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    meta = {b"num_cases_per_batch": 30, b"label_names": list(CIFAR_NAMES), b"num_vis": 3072}
    return tar_gz({"cifar-10-batches-py/test_batch": py2_style_pickle(batch),
                   "cifar-10-batches-py/batches.meta": py2_style_pickle(meta),
                   "cifar-10-batches-py/readme.html": b"<html></html>"})


def fsdd_recordings():
    return {f"{digit}_jackson_{n}.wav": wav_bytes(100 + 10 * digit + n, rate=8000)
            for digit in range(3) for n in range(2)}


def fsdd_archive():
    buffer = io.BytesIO()
    prefix = f"free-spoken-digit-dataset-{FSDD_TAG}/"
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(prefix + "README.md", b"FSDD\n")
        for name, data in fsdd_recordings().items():
            z.writestr(prefix + "recordings/" + name, data)
    return buffer.getvalue()


def archives():
    """{mirror name: bytes} for every download of the real table."""
    files = {"speech_commands_test_set_v0.02.tar.gz": speech_archive(), "cifar-10-python.tar.gz": cifar_archive(),
             f"free-spoken-digit-dataset-{FSDD_TAG}.zip": fsdd_archive()}
    for dataset in DATASETS:
        for download in dataset.downloads:
            files.setdefault(download.name, f"model file {download.name}\n".encode() * 50)
    return files


class Server:
    """Serves `files` under /mirror/NAME; `truncate[name] = n` cuts the next full response of NAME after n bytes;
    `behave[name] = f` answers NAME with `f(handler, data)` instead when that returns True (a misbehaving server)."""

    def __init__(self, files):
        self.files, self.truncate, self.requests, self.behave = files, {}, [], {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                name = self.path.partition("/mirror/")[2]
                if not self.path.startswith("/mirror/") or name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                if name in server.behave and server.behave[name](self, data):
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.truncate.pop(name, None) if not start else None
                self.wfile.write(data[start:cut])
                if cut is not None:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def files():
    return archives()


@pytest.fixture
def server(files):
    server = Server(files)
    yield server
    server.close()


def table(server, files, upstream="mirror", **wrong):
    """The real table with this server's URLs (under /UPSTREAM/) and the test archives' checksums and sizes;
    `wrong={dataset name: True}` gives that dataset a wrong SHA-256."""
    def download(d, name):
        digest = hashlib.sha256(files[d.name]).hexdigest()
        size = len(files[d.name]) if d.size is not None else None  # FSDD's archive: bounded, not pinned
        return dataclasses.replace(d, url=f"{server.base}/{upstream}/{d.name}", size=size,
                                   sha256=("0" * 64 if wrong.get(name) else digest) if d.sha256 else None)

    fsdd_digest = None
    rows = []
    for dataset in DATASETS:
        if dataset.content_sha256:
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                for name, data in fsdd_recordings().items():
                    with open(os.path.join(folder, name), "wb") as f:
                        f.write(data)
                fsdd_digest = "f" * 64 if wrong.get(dataset.name) else tree_sha256(folder)
        rows.append(dataclasses.replace(dataset, downloads=tuple(download(d, dataset.name) for d in dataset.downloads),
                                        content_sha256=fsdd_digest if dataset.content_sha256 else None))
    return tuple(rows)


def quiet(text):
    pass


def test_full_fetch_lays_out_what_the_demos_read(server, files, tmp_path):
    root = tmp_path / "data"
    fetched = data_fetch.fetch(root, datasets=table(server, files), log=quiet)
    assert fetched == [d.name for d in DATASETS]
    assert sorted(os.listdir(root)) == ["cifar10_test", "fsdd", "mlperf_tiny", "speech_commands_v0.02_test"]
    speech = root / demo_data.SPEECH_COMMANDS_TEST
    assert sorted(p.name for p in speech.iterdir()) == sorted(LABELS + ("LICENSE", "README.md"))
    assert (speech / "down" / "0a000000_nohash_0.wav").read_bytes() == wav_bytes(0)
    kws = root / demo_data.MLPERF_KWS
    assert (kws / "variables" / "variables.index").read_bytes() == files["kws/kws_ref_model/variables/variables.index"]
    assert (root / demo_data.MLPERF_RESNET8).read_bytes() == files["ic/pretrainedResnet.h5"]
    assert (root / "mlperf_tiny" / "image_classification" / "LICENSE.md").is_file()
    # CIFAR-10: one folder per class, images in batch order, the pixels of the pickled batch (JPEG, so close).
    from PIL import Image

    data, labels = cifar_images()
    cat = sorted((root / "cifar10_test" / "cat").iterdir())
    assert [p.name for p in cat] == ["0000.jpg", "0001.jpg", "0002.jpg"]
    original = data[[i for i, y in enumerate(labels) if y == 3][1]].reshape(3, 32, 32).transpose(1, 2, 0)
    with Image.open(cat[1]) as image:
        assert image.size == (32, 32)
        assert np.abs(np.asarray(image.convert("RGB"), float) - original).mean() < 60  # noise compresses badly
    assert sorted(os.listdir(root / "fsdd" / "recordings")) == sorted(fsdd_recordings())
    # What the demo, the converters and android-assets check for is there; nothing else is left behind.
    demo_data.require_data([demo_data.SPEECH_COMMANDS_TEST, demo_data.MLPERF_KWS,
                                 demo_data.CIFAR10_TEST, demo_data.MLPERF_RESNET8, demo_data.FSDD], root)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    # A second run fetches nothing.
    requests = len(server.requests)
    assert data_fetch.fetch(root, datasets=table(server, files), log=quiet) == []
    assert len(server.requests) == requests


@pytest.mark.parametrize("bad", ["cifar10", "fsdd"])
def test_checksum_mismatch_is_refused_and_nothing_is_left_behind(server, files, tmp_path, bad):
    root = tmp_path / "data"
    with pytest.raises(FinePruneError, match="SHA-256 .* expected .*nothing was laid out"):
        data_fetch.fetch(root, only=[bad], datasets=table(server, files, **{bad: True}), log=quiet)
    assert list(root.iterdir()) == []


def test_an_interrupted_download_resumes_with_a_range_request(server, files, tmp_path):
    root = tmp_path / "data"
    name = "cifar-10-python.tar.gz"
    half = len(files[name]) // 2
    server.truncate[name] = half
    stopped = f"stopped at {half:,} of {len(files[name]):,} bytes; the partial file is kept: run again"
    with pytest.raises(FinePruneError, match=stopped):
        data_fetch.fetch(root, only=["cifar10"], datasets=table(server, files), log=quiet)
    part = root / data_fetch.DOWNLOADS / "cifar10" / (name + ".part")
    assert part.stat().st_size == half
    assert not (root / "cifar10_test").exists()
    assert data_fetch.fetch(root, only=["cifar10"], datasets=table(server, files), log=quiet) == ["cifar10"]
    assert server.requests[-1] == (f"/mirror/{name}", f"bytes={half}-")
    assert len(os.listdir(root / "cifar10_test" / "truck")) == 3
    assert sorted(os.listdir(root)) == ["cifar10_test"]


def test_cli_only_and_mirror(server, files, tmp_path, monkeypatch, capsys):
    # The table's upstream URLs point where this server answers 404: only --mirror can succeed.
    monkeypatch.setattr(data_fetch, "DATASETS", table(server, files, upstream="gone"))
    root = tmp_path / "data"
    assert main(["data", "fetch", "-o", str(root), "--only", "fsdd"]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert main(["data", "fetch", "-o", str(root), "--only", "fsdd", "--only", "mlperf_kws",
                 "--mirror", server.base + "/mirror/"]) == 0
    assert sorted(os.listdir(root)) == ["fsdd", "mlperf_tiny"]
    assert os.listdir(root / "mlperf_tiny") == ["keyword_spotting"]
    assert {path for path, _ in server.requests if path.startswith("/mirror/")} == {
        f"/mirror/{d.name}" for dataset in DATASETS if dataset.name in ("fsdd", "mlperf_kws")
        for d in dataset.downloads}
    assert main(["data", "fetch", "-o", str(root), "--only", "imagenet"]) == 2
    assert "unknown dataset imagenet; expected one of speech_commands, mlperf_kws" in capsys.readouterr().err


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_fails_in_one_line_with_exit_2(tmp_path):
    result = run_cli("data", "fetch", "-o", tmp_path / "data", "--only", "speech_commands",
                     "--mirror", f"http://127.0.0.1:{closed_port()}", timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot download" in lines[0] and "refused" in lines[0], result.stderr
    assert lines[0].endswith("is the mirror reachable?")
    assert os.listdir(tmp_path / "data") == []


def test_a_data_folder_that_cannot_be_written_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["data", "fetch", "-o", str(tmp_path / "file" / "data"), "--only", "fsdd"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the data folder" in err and "-o DIR" in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert main(["data", "fetch", "-o", str(locked), "--only", "fsdd"]) == 2
        assert "cannot write the data folder" in capsys.readouterr().err


def test_archive_members_outside_their_folder_are_refused(server, files, tmp_path):
    evil = dict(files, **{"speech_commands_test_set_v0.02.tar.gz": tar_gz({"../escaped.wav": wav_bytes(0)})})
    rows = table(server, evil)
    server.files = evil
    with pytest.raises(FinePruneError, match="outside its folder"):
        data_fetch.fetch(tmp_path / "data", only=["speech_commands"], datasets=rows, log=quiet)
    assert not (tmp_path / "escaped.wav").exists() and list((tmp_path / "data").iterdir()) == []


def test_the_table_is_complete():
    for dataset in DATASETS:
        assert dataset.provides and dataset.downloads
        for download in dataset.downloads:
            assert download.url.startswith("https://")
            assert download.sha256 or dataset.content_sha256, download.name
            assert download.sha256 is None or len(download.sha256) == 64
    assert {p for d in DATASETS for p in d.provides} >= {
        demo_data.SPEECH_COMMANDS_TEST, demo_data.CIFAR10_TEST, demo_data.FSDD}


@pytest.mark.parametrize("command", [["demo"], ["demo", "--vision"], ["demo", "--fashion"], ["android-assets"]])
def test_missing_data_is_reported_before_tensorflow_is_imported(tmp_path, command):
    probe = ("import sys; from tflite_fineprune.cli import main; rc = main(sys.argv[1:]); "
             "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-c", probe, *command, "--data", str(empty)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__))))
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    if command[-1] != "--fashion":  # Fashion-MNIST comes from Debian's package (its message says how)
        assert f"tflite-fineprune data fetch -o {empty} --only" in lines[0]


def test_a_cifar_batch_that_constructs_anything_but_arrays_is_refused(server, files, tmp_path):
    batch = py2_style_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"hook": print})
    evil = dict(files, **{"cifar-10-python.tar.gz": tar_gz({"cifar-10-batches-py/test_batch": batch,
                                                            "cifar-10-batches-py/batches.meta": py2_style_pickle(
                                                                {b"label_names": list(CIFAR_NAMES)})})})
    rows = table(server, evil)
    server.files = evil
    refused = r"asks to construct (__builtin__|builtins)\.print; expected numpy arrays only"
    with pytest.raises(FinePruneError, match=refused):
        data_fetch.fetch(tmp_path / "data", only=["cifar10"], datasets=rows, log=quiet)
    assert list((tmp_path / "data").iterdir()) == []
