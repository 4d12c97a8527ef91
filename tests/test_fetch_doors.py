"""`data fetch` against misbehaving servers, planted files, hostile archives and killed processes (issue 21).

The server is test_data_fetch's local one (127.0.0.1) with `behave` hooks; kill -9, SIGINT, a second concurrent
fetch and a full disk (RLIMIT_FSIZE) run in real subprocesses.
"""

import dataclasses
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tflite_fineprune import FinePruneError, data_fetch, data_sources, fetch_guard
from tflite_fineprune.cli import main
from tflite_fineprune.fetch_transfer import Limits
from tests.test_data_fetch import (FSDD_TAG, Server, archives, quiet,
                                   table)

CIFAR = "cifar-10-python.tar.gz"
FSDD_ZIP = f"free-spoken-digit-dataset-{FSDD_TAG}.zip"
SPEECH = "speech_commands_test_set_v0.02.tar.gz"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = Limits(read_timeout=5, min_rate=100, rate_window=1, deadline=10)


@pytest.fixture(scope="module")
def files():
    return archives()


@pytest.fixture
def server(files):
    server = Server(dict(files))
    yield server
    server.close()


def serve(server, **changed):
    """Serve `changed` ({mirror name: bytes}) instead; the table's checksums follow (the table trusts them)."""
    server.files.update(changed)
    return table(server, server.files)


def headers(handler, status=200, length=None, kind="application/octet-stream"):
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.end_headers()


def ignore_range(handler, data):
    headers(handler, 200, len(data))
    handler.wfile.write(data)
    return True


def refuse_range(handler, data):
    if not handler.headers.get("Range"):
        return False
    handler.send_response(416)
    handler.send_header("Content-Range", f"bytes */{len(data)}")
    handler.end_headers()
    return True


def endless(handler, data):
    headers(handler, 200)
    handler.close_connection = True
    try:
        while True:
            handler.wfile.write(b"\0" * 65536)
    except OSError:
        return True


def drip(handler, data, every=0.25, step=1):
    headers(handler, 200, len(data))
    try:
        for start in range(0, len(data), step):
            handler.wfile.write(data[start:start + step])
            handler.wfile.flush()
            time.sleep(every)
    except OSError:
        pass
    return True


def silent(handler, data):
    time.sleep(3)
    return True


def fetch(root, rows, only, messages=None, limits=FAST):
    return data_fetch.fetch(root, only=[only], datasets=rows, log=(messages.append if messages is not None else quiet),
                            limits=limits)


# ---- links, hard links and folders others can write ------------------------------------------------------------

@pytest.mark.parametrize("plant", ["symlink", "hardlink", "verified-symlink"])
def test_a_planted_link_in_the_download_folder_is_removed_never_followed(server, files, tmp_path, plant):
    root, victim = tmp_path / "data", tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    folder = root / data_fetch.DOWNLOADS / "cifar10"
    folder.mkdir(parents=True, mode=0o700)
    target = folder / (CIFAR + ("" if plant.startswith("verified") else ".part"))
    if plant == "hardlink":
        os.link(victim, target)
    else:
        target.symlink_to(victim)
    server.behave[CIFAR] = ignore_range  # with this, the old fetch truncated the victim and reported success
    messages = []
    assert fetch(root, table(server, files), "cifar10", messages) == ["cifar10"]
    assert victim.read_bytes() == b"precious"
    assert any(f"removed {target}" in m and "not a download of ours" in m for m in messages), messages
    assert len(os.listdir(root / "cifar10_test" / "cat")) == 3


def test_a_planted_lock_link_is_refused(server, files, tmp_path):
    root, victim = tmp_path / "data", tmp_path / "victim.txt"
    root.mkdir()
    victim.write_bytes(b"precious")
    (root / ".fetch.lock").symlink_to(victim)
    with pytest.raises(FinePruneError, match="cannot open the lock file .*a link"):
        fetch(root, table(server, files), "cifar10")
    assert victim.read_bytes() == b"precious" and server.requests == []


@pytest.mark.parametrize("case", ["world-writable", "group-writable", "foreign-owner", "foreign-downloads",
                                  "writable-downloads"])
def test_a_folder_others_can_change_is_refused(server, files, tmp_path, capsys, monkeypatch, case):
    if (case.startswith("foreign") or case == "group-writable") and os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user or group")
    root = tmp_path / "data"
    root.mkdir()
    downloads = root / data_fetch.DOWNLOADS
    if case == "world-writable":
        root.chmod(0o777)
    elif case == "group-writable":
        root.chmod(0o775)
        os.chown(root, -1, 12345)  # a group of others (one only the user is in is accepted: umask 002 systems)
    elif case == "foreign-owner":
        os.chown(root, 12345, 12345)
    else:
        downloads.mkdir(mode=0o700)
        if case == "foreign-downloads":
            os.chown(downloads, 12345, 12345)
        else:
            downloads.chmod(0o777)
    monkeypatch.setattr(data_fetch, "DATASETS", table(server, files))
    assert main(["data", "fetch", "-o", str(root), "--only", "cifar10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    expected = {"world-writable": "other users can write it (mode 0777, no sticky bit)",
                "group-writable": "its group can write it (mode 0775, no sticky bit)",
                "foreign-owner": "it belongs to another user (uid 12345)",
                "foreign-downloads": f"does not use {downloads}: it belongs to another user (uid 12345)",
                "writable-downloads": f"does not use {downloads}: other users can write it"}[case]
    assert expected in err[0], err
    assert server.requests == [] and not (root / "cifar10_test").exists()


@pytest.mark.parametrize("mode", [0o1777, 0o775])
def test_a_sticky_shared_folder_or_a_private_group_is_accepted(server, files, tmp_path, mode):
    if mode == 0o775 and not fetch_guard._group_is_ours_alone(os.getegid()):
        pytest.skip("the user's group has other members here")
    root = tmp_path / "data"
    root.mkdir()
    root.chmod(mode)  # 0775: the folder's group is the user's own (the test's uid's primary group, no other member)
    assert fetch(root, table(server, files), "cifar10") == ["cifar10"]


# ---- sizes, rates, deadlines, HTML pages ------------------------------------------------------------------------

def test_an_endless_body_stops_at_the_declared_size_and_is_removed(server, files, tmp_path):
    server.behave[CIFAR] = endless
    root, started = tmp_path / "data", time.monotonic()
    with pytest.raises(FinePruneError, match=f"sent more than the {len(files[CIFAR]):,} bytes expected"):
        fetch(root, table(server, files), "cifar10")
    assert time.monotonic() - started < 10
    assert os.listdir(root) == []  # no .part, no .downloads


def test_a_body_longer_than_the_pinned_size_is_refused_before_it_is_read(server, files, tmp_path):
    server.behave[CIFAR] = lambda handler, data: ignore_range(handler, data + b"\0" * 6_000_000)
    size = len(files[CIFAR])
    declared = f"declares {size + 6_000_000:,} bytes; expected {size:,} bytes; nothing was kept"
    with pytest.raises(FinePruneError, match=declared):
        fetch(tmp_path / "data", table(server, files), "cifar10")
    assert os.listdir(tmp_path / "data") == []


def test_an_unpinned_download_is_bounded_by_its_max_size(server, files, tmp_path):
    rows = tuple(dataclasses.replace(d, downloads=tuple(dataclasses.replace(x, max_size=1000) for x in d.downloads))
                 for d in table(server, files))
    server.behave[FSDD_ZIP] = endless
    with pytest.raises(FinePruneError, match="sent more than the 1,000 bytes expected"):
        fetch(tmp_path / "data", rows, "fsdd")
    assert os.listdir(tmp_path / "data") == []


@pytest.mark.parametrize("behaviour, reason", [
    (drip, "slowed to"), (silent, "slowed to 0.0 bytes/s"),
    (lambda h, d: drip(h, d, every=0.02, step=2000), "took longer than the deadline of 0.5 s")])
def test_a_slow_server_fails_in_bounded_time_and_the_partial_file_stays(server, files, tmp_path, behaviour, reason):
    server.behave[CIFAR] = behaviour
    root, started = tmp_path / "data", time.monotonic()
    limits = dataclasses.replace(FAST, deadline=0.5) if "deadline" in reason else FAST
    with pytest.raises(FinePruneError, match=f"was stopped: it {reason}.*kept: run again to resume"):
        fetch(root, table(server, files), "cifar10", limits=limits)
    assert time.monotonic() - started < 3.5
    part = root / data_fetch.DOWNLOADS / "cifar10" / (CIFAR + ".part")
    assert part.exists() == (behaviour is not silent)
    server.behave.clear()
    assert fetch(root, table(server, files), "cifar10") == ["cifar10"]
    if behaviour is not silent:
        assert server.requests[-1][1].startswith("bytes=")


def test_a_tls_handshake_that_never_ends_is_cut_by_the_rate_floor(tmp_path):
    """A server that accepts and then sends nothing, spoken to over HTTPS: the watchdog sees the socket from its
    TCP connection on, so the handshake is cut too (before, only the per-read timeout bounded each byte)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    port = listener.getsockname()[1]
    rows = tuple(dataclasses.replace(d, downloads=tuple(dataclasses.replace(x, url=f"https://127.0.0.1:{port}/x")
                                                        for x in d.downloads)) for d in data_sources.DATASETS)
    started = time.monotonic()
    try:
        with pytest.raises(FinePruneError, match="was stopped: it slowed to 0.0 bytes/s"):
            fetch(tmp_path / "data", rows, "cifar10", limits=dataclasses.replace(FAST, read_timeout=30))
    finally:
        listener.close()
        for connection, _ in accepted:
            connection.close()
    assert time.monotonic() - started < 5


def test_the_cli_sets_the_deadline_and_refuses_a_nonsense_one(server, files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data_fetch, "DATASETS", table(server, files))
    server.behave[CIFAR] = drip
    root = tmp_path / "data"
    assert main(["data", "fetch", "-o", str(root), "--only", "cifar10", "--deadline", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "took longer than the deadline of 0.5 s" in err[0], err
    assert main(["data", "fetch", "-o", str(root), "--only", "cifar10", "--deadline", "0"]) == 2
    assert "expected a deadline above 0 seconds" in capsys.readouterr().err


def html_page(kind):
    page = b"<!DOCTYPE html>\n<html><body>Sign in to the hotel Wi-Fi</body></html>\n"

    def answer(handler, data):
        headers(handler, 200, len(page), kind)
        handler.wfile.write(page)
        return True
    return answer


@pytest.mark.parametrize("kind", ["text/html", "application/octet-stream"])
@pytest.mark.parametrize("dataset, name", [("cifar10", CIFAR), ("fsdd", FSDD_ZIP)])
def test_a_captive_portal_page_is_named_in_one_line(server, files, tmp_path, monkeypatch, capsys, kind, dataset,
                                                    name):
    monkeypatch.setattr(data_fetch, "DATASETS", table(server, files))
    server.behave[name] = html_page(kind)
    assert main(["data", "fetch", "-o", str(tmp_path / "data"), "--only", dataset]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: the server returned an HTML page, not {name}" in err[0], err
    assert os.listdir(tmp_path / "data") == []


# ---- resuming, 416, what is kept --------------------------------------------------------------------------------

def test_a_server_refusing_to_resume_restarts_from_zero_once(server, files, tmp_path):
    root = tmp_path / "data"
    folder = root / data_fetch.DOWNLOADS / "cifar10"
    folder.mkdir(parents=True, mode=0o700)
    half = len(files[CIFAR]) // 2
    (folder / (CIFAR + ".part")).write_bytes(files[CIFAR][:half])
    server.behave[CIFAR] = refuse_range
    messages = []
    assert fetch(root, table(server, files), "cifar10", messages) == ["cifar10"]
    assert server.requests == [(f"/mirror/{CIFAR}", f"bytes={half}-"), (f"/mirror/{CIFAR}", None)]
    assert any("HTTP 416" in m and "starting over" in m for m in messages)


def test_a_later_failure_keeps_the_downloads_that_passed(server, files, tmp_path):
    root = tmp_path / "data"
    names = [d.name for d in next(d for d in data_sources.DATASETS if d.name == "mlperf_resnet8").downloads]
    server.behave[names[2]] = lambda handler, data: handler.send_error(404) or True
    with pytest.raises(FinePruneError, match="HTTP 404"):
        fetch(root, table(server, files), "mlperf_resnet8")
    kept = sorted(os.listdir(root / data_fetch.DOWNLOADS / "mlperf_resnet8"))
    assert kept == sorted(n.replace("/", "__") for n in names[:2])
    server.behave.clear()
    before = len(server.requests)
    assert fetch(root, table(server, files), "mlperf_resnet8") == ["mlperf_resnet8"]
    assert [path for path, _ in server.requests[before:]] == [f"/mirror/{n}" for n in names[2:]]
    assert sorted(os.listdir(root)) == ["mlperf_tiny"]


def test_downloads_left_by_a_run_killed_after_its_layout_are_removed(server, files, tmp_path):
    root = tmp_path / "data"
    assert fetch(root, table(server, files), "cifar10") == ["cifar10"]
    leftover = root / data_fetch.DOWNLOADS / "cifar10"
    leftover.mkdir(parents=True)
    (leftover / CIFAR).write_bytes(files[CIFAR])
    assert fetch(root, table(server, files), "cifar10") == []
    assert sorted(os.listdir(root)) == ["cifar10_test"]


RUNNER = """
import dataclasses, pathlib, pickle, resource, signal, sys, time
from tflite_fineprune import FinePruneError, data_fetch
rows_path, root, only, mode = sys.argv[1:5]
rows = pickle.loads(pathlib.Path(rows_path).read_bytes())
if mode.startswith("slow-layout:"):
    marker = pathlib.Path(mode.split(":", 1)[1])
    def slow(dataset):
        def layout(paths, staging):
            dataset.layout(paths, staging)
            marker.write_text("laying out")
            time.sleep(60)
        return dataclasses.replace(dataset, layout=layout)
    rows = tuple(slow(d) for d in rows)
elif mode.startswith("fsize:"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(mode[6:]), int(mode[6:])))
try:
    print("fetched", data_fetch.fetch(root, only=[only], datasets=rows), flush=True)
except FinePruneError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


def runner(tmp_path, rows, root, only, mode="plain"):
    script, rows_path = tmp_path / "runner.py", tmp_path / "rows.pickle"
    script.write_text(RUNNER)
    rows_path.write_bytes(pickle.dumps(rows))
    return subprocess.Popen([sys.executable, str(script), str(rows_path), str(root), only, mode], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=REPO))


def wait_for(test, timeout=60):
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def staging(root):
    return [p.name for p in root.iterdir() if p.name.startswith(".fetch-")]


def test_a_second_fetch_waits_and_a_kill_9_loses_nothing(server, files, tmp_path):
    root, marker, rows = tmp_path / "data", tmp_path / "marker", table(server, files)
    first = runner(tmp_path, rows, root, "cifar10", f"slow-layout:{marker}")
    wait_for(marker.exists)
    assert staging(root)  # the killed run's half-made folder
    second = runner(tmp_path, rows, root, "cifar10")
    ready, _, _ = select.select([second.stdout], [], [], 60)
    assert ready and "is writing to" in second.stdout.readline() and second.poll() is None  # waits, says so
    first.kill()
    first.wait()
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "left by an interrupted data fetch" in out and "verified by an earlier run, kept" in out
    assert [path for path, _ in server.requests] == [f"/mirror/{CIFAR}"]  # downloaded once, by the killed run
    assert sorted(os.listdir(root)) == ["cifar10_test"]


def test_ctrl_c_during_layout_keeps_the_verified_download(server, files, tmp_path):
    root, marker, rows = tmp_path / "data", tmp_path / "marker", table(server, files)
    process = runner(tmp_path, rows, root, "cifar10", f"slow-layout:{marker}")
    wait_for(marker.exists)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0 and staging(root) == []
    assert (root / data_fetch.DOWNLOADS / "cifar10" / CIFAR).is_file()
    assert fetch(root, rows, "cifar10") == ["cifar10"]
    assert len(server.requests) == 1


def test_two_plain_fetches_into_one_folder_both_succeed(server, files, tmp_path):
    server.behave[CIFAR] = lambda handler, data: drip(handler, data, every=0.2, step=16384)
    root, rows = tmp_path / "data", table(server, files)
    processes = [runner(tmp_path, rows, root, "cifar10") for _ in range(2)]  # the transfer takes about 1.5 s
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], results
    assert {out.splitlines()[-1] for out, _ in results} == {"fetched []", "fetched ['cifar10']"}
    assert sorted(os.listdir(root)) == ["cifar10_test"]


def test_a_full_disk_is_one_line_and_the_next_run_resumes(server, files, tmp_path):
    root, rows = tmp_path / "data", table(server, files)
    process = runner(tmp_path, rows, root, "cifar10", "fsize:20000")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "File too large; the partial file is kept" in err
    assert fetch(root, rows, "cifar10") == ["cifar10"]
    assert server.requests[-1] == (f"/mirror/{CIFAR}", "bytes=20000-")
