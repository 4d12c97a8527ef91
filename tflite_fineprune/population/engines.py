"""The engines that evaluate users: `local` (in this process, the reference) and `ray` (a Ray cluster).

Both call `worker.evaluate_batch` on the same `UserSpec`s with the same
settings and hand each finished user's rows to `on_user(index, rows)`; the
runner orders them by user index, so the two engines' files are identical.

The Ray engine follows Ray's own guidance for many small jobs: one actor per
CPU holding an interpreter with one thread (cached by the model's SHA-256),
the model's bytes put in the object store once, users sent in batches sized
so that a task runs for seconds, at most two tasks queued per actor, and
actors restarted and their tasks retried when a worker process dies (a batch
whose actor is gone for good is sent to another actor).
"""

import collections
import hashlib
import itertools
import math
import os
import resource
import time

from ..errors import FinePruneError
from .worker import ModelCache, evaluate_batch, open_model

RAY_EXTRA = "pip install 'tflite-fineprune[ray]'"
TASK_SECONDS = 5.0  # what a batch of users aims to take: Ray's per-task overhead is ~1 ms, a user's ~0.03–1 s
MAX_USERS_PER_TASK = 256
TASKS_PER_ACTOR = 2  # one running, one queued: an actor never waits for the driver
BATCH_ATTEMPTS = 4


class EngineStats:
    """What an engine measured: start-up, seconds per user inside the workers, each worker's peak memory."""

    def __init__(self, engine, workers):
        self.engine, self.workers = engine, workers
        self.startup_seconds = 0.0
        self.worker_seconds = 0.0
        self.users = 0
        self.peak_rss_mb = {}
        self.retried_batches = 0

    def as_dict(self):
        return {"engine": self.engine, "workers": self.workers, "startup_seconds": round(self.startup_seconds, 3),
                "worker_seconds_per_user": (self.worker_seconds / self.users) if self.users else None,
                "worker_peak_rss_mb": dict(sorted(self.peak_rss_mb.items())), "retried_batches": self.retried_batches}


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def run_local(model_path, users, recipes, settings, on_user):
    """Evaluate `users` one after another in this process."""
    stats = EngineStats("local", 1)
    start = time.perf_counter()
    personalizer = open_model(model_path, settings)
    stats.startup_seconds = time.perf_counter() - start
    for user in users:
        begin = time.perf_counter()
        (index, rows), = evaluate_batch(personalizer, [user], recipes, settings)
        stats.worker_seconds += time.perf_counter() - begin
        stats.users += 1
        on_user(index, rows)
    stats.peak_rss_mb[f"pid {os.getpid()}"] = round(_peak_rss_mb(), 1)
    return stats


def import_ray():
    """Ray, or one clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise FinePruneError(f"the ray engine needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


class PopulationWorker:
    """The actor: one personalizer per process, reused for every batch of the same model."""

    def __init__(self):
        self.cache = ModelCache()

    def run(self, digest, model_ref, users, recipes, settings):
        import ray

        begin = time.perf_counter()
        personalizer = self.cache.get(digest, lambda: ray.get(model_ref[0]), settings)
        results = evaluate_batch(personalizer, users, recipes, settings)
        return results, time.perf_counter() - begin, os.getpid(), _peak_rss_mb()

    def ready(self):
        return os.getpid()


def connect(ray, workers=None, address=None):
    """Join the cluster at `address` (or $RAY_ADDRESS), shipping this package, or start Ray on this machine's
    cores; True when this call started (and so must stop) Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    quiet = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
    if address:
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        ray.init(address=address, runtime_env={"py_modules": [package]}, **quiet)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, **quiet)
    return True


def run_ray(model_path, users, count, recipes, settings, on_user, workers=None, address=None, users_per_task=None):
    """Evaluate `count` users (an iterable) on Ray actors (module docstring); Ray is stopped at the end only if
    this call started it."""
    ray = import_ray()
    start = time.perf_counter()
    started = connect(ray, workers, address)
    try:
        workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        with open(model_path, "rb") as f:
            blob = f.read()
        digest = hashlib.sha256(blob).hexdigest()
        actor_class = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=3)(PopulationWorker)
        actors = [actor_class.remote() for _ in range(workers)]
        ray.get([a.ready.remote() for a in actors])
        stats = EngineStats("ray", workers)
        stats.startup_seconds = time.perf_counter() - start
        model_ref = [ray.put(blob)]  # in a list: passed as a reference, fetched once per actor

        def submit(actor, batch):
            return actor.run.remote(digest, model_ref, batch, recipes, settings)

        _drive(ray, actors, actor_class, (iter(users), count), submit, on_user, stats, users_per_task)
        return stats
    finally:
        if started:
            ray.shutdown()


def _drive(ray, actors, actor_class, users, submit, on_user, stats, users_per_task):
    """Keep every actor busy with batches of users until all have come back; hand each user's rows on."""
    (pending, remaining), retry = users, collections.deque()
    in_flight, load = {}, [0] * len(actors)
    per_user = None  # seconds a user takes inside a worker, measured as batches come back

    def next_batch():
        nonlocal remaining
        if retry:
            return retry.popleft()
        if users_per_task:
            size = users_per_task
        elif per_user is None:
            size = 1  # the first batches measure what a user costs
        else:
            balance = math.ceil(remaining / (TASKS_PER_ACTOR * len(actors)))
            size = max(1, min(int(TASK_SECONDS / max(per_user, 1e-6)), MAX_USERS_PER_TASK, balance))
        batch = list(itertools.islice(pending, size))
        remaining -= len(batch)
        return batch, 0

    while remaining or retry or in_flight:
        for slot, actor in enumerate(actors):
            while load[slot] < TASKS_PER_ACTOR and (remaining or retry):
                batch, attempts = next_batch()
                in_flight[submit(actor, batch)] = (slot, batch, attempts)
                load[slot] += 1
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        slot, batch, attempts = in_flight.pop(ref)
        load[slot] -= 1
        try:
            results, seconds, pid, rss = ray.get(ref)
        except ray.exceptions.RayError as exc:
            if attempts + 1 >= BATCH_ATTEMPTS:
                raise FinePruneError(f"Ray could not evaluate users {', '.join(u.name for u in batch[:5])}"
                                     f"{' …' if len(batch) > 5 else ''} after {BATCH_ATTEMPTS} attempts: "
                                     f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
            stats.retried_batches += 1
            retry.append((batch, attempts + 1))
            if isinstance(exc, ray.exceptions.RayActorError):  # gone for good (its restarts are used up)
                actors[slot] = actor_class.remote()
            continue
        stats.worker_seconds += seconds
        stats.users += len(results)
        stats.peak_rss_mb[f"pid {pid}"] = round(rss, 1)
        per_user = stats.worker_seconds / stats.users
        for index, rows in results:
            on_user(index, rows)
