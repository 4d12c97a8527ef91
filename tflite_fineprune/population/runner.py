"""`evaluate_population`: a recipe judged over a whole population of users, on one machine or a Ray cluster."""

import dataclasses
import hashlib
import os
import time

from ..errors import FinePruneError
from ..input_checks import check_positive_int
from ..metadata import read_model_file
from ..progress import Counter
from . import users as user_kinds
from .engines import EngineStats, import_ray, run_local, run_ray
from .outputs import RowLog, csv_text, write_json, write_parquet
from .recipes import as_recipes
from .summary import format_summary, plot_gains, summarize
from .worker import COLUMNS, OTHERS_COLUMNS, Settings

ENGINES = ("local", "ray")


@dataclasses.dataclass
class PopulationResult:
    """The rows (one per user and recipe, in user order), the per-recipe summary, what the run measured."""

    rows: list
    summary: list
    info: dict
    notes: list
    files: dict

    def __str__(self):
        return format_summary(self.summary)


def discover_users(kind, labels, data=None, manifest=None, class_subsets=(2, 3, 5), count=30, per_class=100,
                   skip_first=0, min_files=2, others=0, seed=0):
    """`(users, notes)`: the `UserSpec`s of one kind (tflite_fineprune/population/users.py) for a model's labels."""
    labels = list(labels)
    if kind == "manifest":
        if manifest is None:
            raise FinePruneError("--users manifest needs --manifest FILE.csv (columns path,user,label)")
        return user_kinds.manifest_users(manifest, labels, seed, min_files, others)
    if kind not in user_kinds.KINDS:
        raise FinePruneError(f"unknown kind of users {kind!r}; expected one of {', '.join(user_kinds.KINDS)}")
    if data is None:
        raise FinePruneError(f"--users {kind} needs --data DIR")
    if kind == "folders":
        return user_kinds.folder_users(data, labels, seed, min_files, others)
    if kind == "speakers":
        return user_kinds.speaker_users(data, labels, seed, min_files, others)
    return user_kinds.class_subset_users(data, labels, tuple(class_subsets), check_positive_int(count, "count"),
                                         check_positive_int(per_class, "per_class"), seed, others, skip_first)


def _check_users(users):
    if isinstance(users, user_kinds.ClassSubsetUsers):
        return users
    users = list(users)
    if not users or not all(isinstance(u, user_kinds.UserSpec) for u in users):
        raise FinePruneError("users must be a kind (folders, speakers, class-subsets, manifest) or a non-empty "
                             "list of population.UserSpec")
    if [u.index for u in users] != list(range(len(users))):
        raise FinePruneError("UserSpec indices must be 0, 1, 2, … in order")
    return users


def evaluate_population(model_path, users, recipes=None, engine="local", workers=None, address=None, out=None,
                        data=None, manifest=None, class_subsets=(2, 3, 5), count=30, per_class=100, skip_first=0,
                        min_files=2, others=0, seed=0, backend="auto", batch_size=32, preprocess=None,
                        users_per_task=None, progress=True, on_note=None):
    """Personalize every user of a population with each recipe and score them on their held-out files.

    Parameters
    ----------
    model_path : path
        A `.tflite` written by `export_model`.
    users : {"folders", "speakers", "class-subsets", "manifest"} or list of UserSpec
        Where the users come from (the parameters below describe them; docs/population.md), or users already
        made.
    recipes : sequence of str or recipe objects, optional
        Names such as "auto", "dense", "prune:0.5+classes:0.1" (default: auto and dense).
    engine : {"local", "ray"}
        In this process, or on Ray.
    workers : int, optional
        Ray: actors, one CPU each (default: every CPU of the cluster).
    address : str, optional
        Ray: join this cluster (default $RAY_ADDRESS, else start Ray on this machine).
    out : path, optional
        Folder for users.csv (rows written as users finish; a rerun resumes), users.parquet, summary.json and
        gains.png.
    data : path, optional
        The users' folder: "folders" DATA/<user>/<label>/<files>, "speakers" DATA/<label>/<speaker>_nohash_<n>.wav,
        "class-subsets" DATA/<label>/<files>.
    manifest : path, optional
        "manifest": a CSV with the columns path,user,label (paths relative to the CSV).
    class_subsets : sequence of int
        "class-subsets": how many classes each user meets, in turn.
    count : int
        "class-subsets": how many users.
    per_class : int
        "class-subsets": files per class and user, half to adapt, half to score.
    skip_first : int
        "class-subsets": the first files of each class (by name) that belong to nobody (e.g. the export's
        normalization reference images).
    min_files : int
        Users with fewer files are left out (at least 2 are needed: one to adapt, one to score).
    others : int
        Also score each user's model on this many files of other users (what it forgets).
    seed : int
        Each user's split and draws come from (seed, user index).
    backend : str
        The TFLite interpreter ("auto" or one of `interpreters.BACKENDS`).
    batch_size : int
        Samples per interpreter call.
    preprocess : str, optional
        "module:function" turning a decoded file into samples.
    users_per_task : int, optional
        Ray: users per task (default: sized from the measured cost so that a task takes about 5 s).
    progress : bool
        Show a progress bar over the users.
    on_note : callable, optional
        Receives each one-line note about the users (default: `print`).

    Returns
    -------
    PopulationResult
        The rows (one per user and recipe) and their summary.

    Raises
    ------
    ModelError
        When the model cannot be read.
    InputError
        When no user has enough files, or a user's files cannot be read.
    FinePruneError
        When an argument is invalid, or Ray is missing for engine="ray".
    """
    if engine not in ENGINES:
        raise FinePruneError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    workers = check_positive_int(workers, "workers")
    if engine == "local" and workers not in (None, 1):
        raise FinePruneError("the local engine runs in this process; workers apply to engine='ray'")
    if engine == "ray":
        import_ray()  # a missing extra says so before any file is read
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise FinePruneError(f"seed must be a non-negative integer, got {seed!r}")
    for value, name in ((skip_first, "skip_first"), (min_files, "min_files"), (others, "others")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FinePruneError(f"{name} must be a non-negative integer, got {value!r}")
    blob, meta = read_model_file(model_path)
    notes = []
    if isinstance(users, str):
        description = {"kind": users, "data": data and os.path.abspath(data), "manifest": manifest and
                       os.path.abspath(manifest), "class_subsets": list(class_subsets), "count": count,
                       "per_class": per_class, "skip_first": skip_first, "min_files": min_files}
        users, notes = discover_users(users, meta.labels, data, manifest, class_subsets, count, per_class,
                                      skip_first, min_files, others, seed)
    else:
        users = _check_users(users)
        description = {"given": hashlib.sha256(repr(users).encode("utf-8")).hexdigest()}
    for note in notes:
        (on_note or print)(f"note: {note}")
    recipes = as_recipes(recipes)
    settings = Settings(backend=backend, batch_size=check_positive_int(batch_size, "batch_size"), threads=1,
                        preprocess=preprocess, seed=seed)
    columns = COLUMNS + (OTHERS_COLUMNS if others else ())
    run = {"model_sha256": hashlib.sha256(blob).hexdigest(), "users": description, "users_count": len(users),
           "recipes": [r.name for r in recipes], "seed": seed, "others": others, "batch_size": settings.batch_size}
    return _run(model_path, users, recipes, settings, columns, run, out, engine, workers, address, users_per_task,
                progress)


def _run(model_path, users, recipes, settings, columns, run, out, engine, workers, address, users_per_task,
         progress):
    log = RowLog(out, columns, run, [r.name for r in recipes]) if out is not None else None
    results = dict(log.done) if log else {}
    todo_count = len(users) - len(results)
    todo = (users[i] for i in range(len(users)) if i not in results)  # made one at a time: users may be lazy
    bar = Counter(len(users), "users", "users", progress, initial=len(results))
    if results and progress:
        bar.write(f"resuming: {len(results)} of {len(users)} users already in {log.path}")

    def on_user(index, rows):
        results[index] = rows
        if log:
            log.write(rows)
        errors = dict.fromkeys(r["error"] for r in rows if r["error"])
        for error in errors:
            bar.write(f"user {rows[0]['user']} failed: {error}")
        bar.update(1)

    start = time.perf_counter()
    try:
        if not todo_count:
            stats = EngineStats(engine, workers or 1)  # every user was written before: nothing to start
        elif engine == "local":
            stats = run_local(model_path, todo, recipes, settings, on_user)
        else:
            stats = run_ray(model_path, todo, todo_count, recipes, settings, on_user, workers, address,
                            users_per_task)
    finally:
        bar.close()
        if log:
            log.close()
    seconds = time.perf_counter() - start
    rows = [row for index in sorted(results) for row in results[index]]
    summary = summarize(rows)
    failed = sum(1 for index in results if any(r["error"] for r in results[index]))
    info = {**run, **stats.as_dict(), "users_evaluated_now": todo_count, "users_resumed": len(users) - todo_count,
            "failed_users": failed, "seconds": round(seconds, 3),
            "users_per_second": (todo_count / seconds) if seconds > 0 else None,
            "users_per_second_after_startup": (todo_count / (seconds - stats.startup_seconds)
                                               if seconds > stats.startup_seconds else None),
            "summary": [{k: (float(v) if hasattr(v, "dtype") else v) for k, v in s.items()} for s in summary]}
    files, notes = _write_outputs(out, rows, columns, info, f"{len(users)} users, {os.path.basename(model_path)}")
    return PopulationResult(rows, summary, info, notes, files)


def _write_outputs(out, rows, columns, info, title):
    if out is None:
        return {}, []
    from ..safe_io import atomic_write

    files, notes = {"csv": os.path.join(out, "users.csv")}, []
    atomic_write(files["csv"], csv_text(rows, columns).encode("utf-8"))  # in user order, whatever finished first
    parquet = os.path.join(out, "users.parquet")
    if write_parquet(rows, columns, parquet):
        files["parquet"] = parquet
    else:
        notes.append("users.parquet not written: pyarrow is not installed (pip install pyarrow)")
    files["summary"] = os.path.join(out, "summary.json")
    write_json(files["summary"], info)
    plot = os.path.join(out, "gains.png")
    if plot_gains(rows, plot, title):
        files["plot"] = plot
    else:
        notes.append("gains.png not written: matplotlib is not installed (pip install matplotlib, or the demo "
                     "extra)")
    return files, notes
