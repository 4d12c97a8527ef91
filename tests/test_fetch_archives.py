"""`data fetch` against hostile archives and pickles (issue 21): zip and tar bombs, bad CRCs, encrypted members,
unknown compression methods, corrupt tars, and CIFAR-10 pickles that claim more than they hold or build arrays with
a shape but no data. Each is one line and exit status 2, nothing is laid out, and the refused download is deleted.
"""

import io
import os
import struct
import time
import zipfile

import numpy as np
import pytest

from tflite_fineprune import FinePruneError, data_fetch, data_sources
from tflite_fineprune.archive_guard import ExtractLimits
from tflite_fineprune.cli import main
from tests.test_data_fetch import CIFAR_NAMES, FSDD_TAG, Server, archives, fsdd_archive, py2_style_pickle, tar_gz
from tests.test_fetch_doors import CIFAR, FSDD_ZIP, SPEECH, fetch, serve


@pytest.fixture(scope="module")
def files():
    return archives()


@pytest.fixture
def server(files):
    server = Server(dict(files))
    yield server
    server.close()


def zip_with(members, method=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(f"free-spoken-digit-dataset-{FSDD_TAG}/recordings/{name}", data)
    return buffer.getvalue()


def patch_headers(archive, offset_local, offset_central, value):
    """Set a 2-byte field in every local and central header of a zip."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        infos, position = z.infolist(), z.start_dir
    for info in infos:
        struct.pack_into("<H", data, info.header_offset + offset_local, value)
        struct.pack_into("<H", data, position + offset_central, value)
        names, extra, comment = struct.unpack_from("<HHH", data, position + 28)
        position += 46 + names + extra + comment
    return bytes(data)


def bad_crc():
    archive = bytearray(fsdd_archive())
    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as z:
        info = z.infolist()[1]
    archive[info.header_offset + 30 + len(info.filename) + 100] ^= 0xFF
    return bytes(archive)


@pytest.mark.parametrize("archive, refused", [
    (lambda: zip_with({"0_x_0.wav": b"\0" * (32 << 20)}, zipfile.ZIP_DEFLATED), "would unpack to more than"),
    (bad_crc, "Bad CRC-32"),
    (lambda: patch_headers(zip_with({"0_x_0.wav": b"RIFF"}), 6, 8, 0x1), "is encrypted"),
    (lambda: patch_headers(zip_with({"0_x_0.wav": b"RIFF"}), 8, 10, 99), "uses compression method 99"),
    (lambda: b"PK\x03\x04 not really a zip", "is not a valid archive"),
])
def test_a_hostile_zip_is_one_line_and_writes_nothing(server, tmp_path, monkeypatch, capsys, archive, refused):
    monkeypatch.setattr(data_fetch, "DATASETS", serve(server, **{FSDD_ZIP: archive()}))
    assert main(["data", "fetch", "-o", str(tmp_path / "data"), "--only", "fsdd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and refused in err[0], err
    assert os.listdir(tmp_path / "data") == []  # the unpinned download is deleted with the refusal


def test_too_many_members_are_refused(server, tmp_path, monkeypatch):
    monkeypatch.setattr(data_sources, "FSDD_LIMITS", ExtractLimits(total=10**9, members=5))
    rows = serve(server, **{FSDD_ZIP: zip_with({f"0_x_{n}.wav": b"RIFF" for n in range(6)})})
    with pytest.raises(FinePruneError, match="holds more than 5 members"):
        fetch(tmp_path / "data", rows, "fsdd")


@pytest.mark.parametrize("archive, refused", [
    (lambda: tar_gz({"./yes/a.wav": b"\0" * (32 << 20)}), "would unpack to more than"),
    (lambda: tar_gz({"./yes/a.wav": np.random.default_rng(0).bytes(4000)})[:2000], "is not a valid archive"),
    (lambda: b"\x1f\x8b\x08\x00garbage", "is not a valid archive"),
    (lambda: b"plain text, not a tar", "is not a valid archive"),
])
def test_a_hostile_tar_is_one_line(server, tmp_path, monkeypatch, capsys, archive, refused):
    monkeypatch.setattr(data_fetch, "DATASETS", serve(server, **{SPEECH: archive()}))
    started = time.monotonic()
    assert main(["data", "fetch", "-o", str(tmp_path / "data"), "--only", "speech_commands"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and refused in err[0], err
    assert time.monotonic() - started < 10 and os.listdir(tmp_path / "data") == []


class Forged:
    """Pickles as numpy's own array recipe with a chosen start shape and state."""

    def __init__(self, shape, state):
        self.shape, self.state = shape, state

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, self.shape, b"B"), self.state


class Encoded:
    """Pickles as `_codecs.encode(text, encoding)`, as protocol 2 writes bytes."""

    def __init__(self, text, encoding="latin1"):
        self.text, self.encoding = text, encoding

    def __reduce__(self):
        import codecs

        return codecs.encode, (self.text, self.encoding)


TEXT = "".join(map(chr, np.random.default_rng(0).integers(0, 256, 50_000)))  # one memoized string, many calls


def cifar_with(test_batch):
    meta = py2_style_pickle({b"label_names": list(CIFAR_NAMES)})
    return tar_gz({"cifar-10-batches-py/test_batch": test_batch, "cifar-10-batches-py/batches.meta": meta})


@pytest.mark.parametrize("batch, refused", [
    (b"\x80\x04\x8e" + struct.pack("<Q", 3 << 30) + b"x" * 100 + b".", "expected 3221225472 bytes"),
    (py2_style_pickle({b"data": Forged((300_000, 3072), None), b"labels": [0]}), "of shape (300000, 3072)"),
    (py2_style_pickle({b"data": Forged((0,), (1, (300_000, 3072), np.dtype(np.uint8), False, b"\0" * 10)),
                       b"labels": [0]}), "holds an invalid array"),
    (py2_style_pickle({b"data": np.random.default_rng(0).random((2, 3072)), b"labels": [0, 1]}),
     "expected uint8 [N, 3072]"),
    (py2_style_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}), "labels in 0..9"),
    (py2_style_pickle([1, 2])[:-3], "is not a valid pickle"),
    (py2_style_pickle({b"data": [Encoded(TEXT) for _ in range(1000)], b"labels": [0]}),
     "bytes of data from a pickle of about half that"),
    (py2_style_pickle({b"data": Encoded(TEXT, "hex"), b"labels": [0]}), "as 'hex'; expected latin1 text"),
    (py2_style_pickle({b"data": Forged((0,), (1, (1, 3), np.dtype(object), False, [1, 2, 3])),
                       b"labels": [0]}), "fills an array from list; expected raw bytes"),
])
def test_a_hostile_cifar_pickle_is_one_line_with_no_fake_images(server, tmp_path, monkeypatch, capsys, batch,
                                                                 refused):
    monkeypatch.setattr(data_fetch, "DATASETS", serve(server, **{CIFAR: cifar_with(batch)}))
    assert main(["data", "fetch", "-o", str(tmp_path / "data"), "--only", "cifar10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and refused in err[0], err
    assert os.listdir(tmp_path / "data") == []  # no images, and the refused archive is not kept


def test_the_real_table_bounds_every_download():
    for dataset in data_sources.DATASETS:
        for download in dataset.downloads:
            assert download.size is not None or download.max_size is not None, download.name
