"""The Ray engine on a two-node cluster started on this machine, with a worker process killed mid-run: the run
completes, and its rows equal the local engine's (minutes: two Ray nodes and a driver that ships the code)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.population.test_population import REPO, model_path, read_rows, run_cli, user_folders

pytest.importorskip("ray", reason="the ray extra: pip install 'tflite-fineprune[ray]'")

WORKER_TITLE = b"ray::PopulationWorker"


def _descendants(root):
    """Process ids whose ancestry includes `root` (the cluster's nodes are this process's children)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    parents[int(name)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found = set()
    for pid in parents:
        ancestor = pid
        while ancestor in parents and ancestor not in (0, 1):
            ancestor = parents[ancestor]
            if ancestor == root:
                found.add(pid)
                break
    return found


def population_workers():
    pids = []
    for pid in sorted(_descendants(os.getpid())):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(WORKER_TITLE):
                    pids.append(pid)
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_two_node_cluster_with_a_killed_worker_equals_local(exports, tmp_path):
    from ray.cluster_utils import Cluster

    users = 100
    data = user_folders(tmp_path / "users", users, per_label=3)
    args = ["population", model_path(exports), "--data", data, "--users", "folders", "--recipe", "auto",
            "--recipe", "prune:0.1", "--no-progress"]
    local = run_cli(*args, "-o", tmp_path / "local")
    assert local.returncode == 0, local.stderr
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "ray"
        driver = subprocess.Popen([sys.executable, "-m", "tflite_fineprune", *map(str, args), "--engine", "ray",
                                   "--address", cluster.address, "--users-per-task", "2", "-o", str(out)],
                                  cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killed, done_when_killed, deadline = None, None, time.monotonic() + 400
        while killed is None and time.monotonic() < deadline and driver.poll() is None:
            workers = population_workers()
            rows = len(read_rows(out / "users.csv")) if (out / "users.csv").exists() else 0
            if len(workers) == 2 and rows >= 4:
                done_when_killed = rows // 2  # two recipes a user; counted at the kill, not after it
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        stdout, stderr = driver.communicate(timeout=600)
        assert driver.returncode == 0, stderr
        assert killed is not None and done_when_killed < users, "the worker was not killed mid-run"
        assert killed not in population_workers()
        assert (out / "users.csv").read_bytes() == (tmp_path / "local" / "users.csv").read_bytes()
        assert "ray engine, 2 workers" in stdout
    finally:
        cluster.shutdown()
