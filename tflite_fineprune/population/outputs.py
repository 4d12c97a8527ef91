"""A population run's folder: rows appended as users finish, resume, and the final files.

`OUT/run.json` records what the run evaluates (model digest, users, recipes,
seed); `OUT/users.csv` receives each user's rows as soon as they finish
(flushed), so an interrupted run resumes by skipping the users already
there. At the end `users.csv` is rewritten in user-index order (whatever the
order users finished in), with `users.parquet` where pyarrow is installed,
`summary.json` and `gains.png`.
"""

import csv
import io
import json
import os

from ..errors import FinePruneError
from ..safe_io import atomic_write

INTEGER_COLUMNS = ("adapt", "eval", "index")
FLOAT_COLUMNS = ("dense_accuracy", "accuracy", "unit_sparsity", "weight_sparsity", "mac_sparsity", "dense_others",
                 "others")


def _typed(row):
    out = dict(row)
    for key in INTEGER_COLUMNS:
        if out.get(key) not in (None, ""):
            out[key] = int(out[key])
    for key in FLOAT_COLUMNS:
        if out.get(key) not in (None, ""):
            out[key] = float(out[key])
    return out


class RowLog:
    """`OUT/users.csv` opened for appending; `done` maps user index → its rows already written (resume)."""

    def __init__(self, out, columns, run, recipe_names):
        self.out = os.fspath(out)
        self.columns = tuple(columns)
        self.path = os.path.join(self.out, "users.csv")
        os.makedirs(self.out, exist_ok=True)
        self._check_run(run)
        self.done = self._read_done(recipe_names)
        new = not os.path.exists(self.path)
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def _check_run(self, run):
        record = os.path.join(self.out, "run.json")
        if os.path.exists(record):
            try:
                with open(record, encoding="utf-8") as f:
                    before = json.load(f)
            except (OSError, ValueError) as exc:
                raise FinePruneError(f"{record} is unreadable ({exc}); delete {self.out} or pick another -o") from None
            changed = sorted(k for k in set(before) | set(run) if before.get(k) != run.get(k))
            if changed:
                raise FinePruneError(f"{self.out} holds a run with other settings ({', '.join(changed)} differ); "
                                     "resume only continues the same run: pick another -o or delete the folder")
        elif os.path.exists(self.path):
            raise FinePruneError(f"{self.path} exists but {record} does not: not a population run's folder; "
                                 "pick another -o")
        else:
            atomic_write(record, (json.dumps(run, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    def _read_done(self, recipe_names):
        if not os.path.exists(self.path):
            return {}
        with open(self.path, "rb") as f:
            blob = f.read()
        complete = blob[:blob.rfind(b"\n") + 1]  # a line cut by a crash is dropped and written again
        if len(complete) != len(blob):
            with open(self.path, "r+b") as f:
                f.truncate(len(complete))
        reader = csv.DictReader(io.StringIO(complete.decode("utf-8"), newline=""))
        if tuple(reader.fieldnames or ()) != self.columns:
            raise FinePruneError(f"{self.path} has the columns {reader.fieldnames}; this run writes "
                                 f"{list(self.columns)}: pick another -o")
        by_user = {}
        for row in reader:
            by_user.setdefault(int(row["index"]), []).append(_typed(row))
        wanted = list(recipe_names)
        return {i: rows for i, rows in by_user.items() if [r["recipe"] for r in rows] == wanted}

    def write(self, rows):
        """Append one user's rows at once and flush them to the operating system."""
        self._writer.writerows(rows)
        self._file.flush()

    def close(self):
        self._file.close()


def csv_text(rows, columns):
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_parquet(rows, columns, path):
    """`users.parquet` beside the CSV, when pyarrow is installed; False when it is not."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return False
    table = {}
    for key in columns:
        values = [None if r.get(key) in (None, "") else r[key] for r in rows]
        kind = (pyarrow.int64() if key in INTEGER_COLUMNS else pyarrow.float64() if key in FLOAT_COLUMNS
                else pyarrow.string())
        table[key] = pyarrow.array(values, type=kind)
    buffer = io.BytesIO()
    pyarrow.parquet.write_table(pyarrow.table(table), buffer)
    atomic_write(path, buffer.getvalue())
    return True


def write_json(path, value):
    atomic_write(path, (json.dumps(value, indent=1) + "\n").encode("utf-8"))
