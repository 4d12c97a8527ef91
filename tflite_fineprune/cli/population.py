"""`tflite-fineprune population`: a recipe judged over a population of users, locally or on a Ray cluster."""

import argparse

from ..interpreters import BACKENDS

EXAMPLES = """examples:
  # 1,000 users who each meet 2, 3 or 5 CIFAR-10 classes, auto against dense, on this machine
  tflite-fineprune population resnet8.tflite --data cifar10_test --users class-subsets --count 1000 -o pop/
  # every Speech Commands speaker, two expert settings too, on Ray with 2 workers
  tflite-fineprune population kws.tflite --data speech_commands_v0.02_test --users speakers \\
      --recipe auto --recipe dense --recipe prune:0.05 --recipe classes:0.1 --engine ray --workers 2 -o pop/
  # your own users (DIR/<user>/<label>/<files>) on an existing Ray cluster (or set RAY_ADDRESS)
  tflite-fineprune population model.tflite --data users/ --users folders --engine ray --address HEAD:6379 -o pop/
Recipes: auto, auto:FIELD=V (an AutoRule field), dense, or levers LEVER:V joined by + (prune, magnitude,
random, classes, dormant, normalize), e.g. prune:0.05+classes:0.1. Rerunning with the same -o resumes:
users already in OUT/users.csv are skipped. docs/population.md."""


def _class_counts(text):
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class counts such as 2,3,5, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive class counts such as 2,3,5, got {text!r}")
    return counts


def add_parser(commands):
    """The `population` sub-command; returns the command function."""
    from ..population.users import KINDS

    p = commands.add_parser("population", help="personalize and score a whole population of users (local or Ray)")
    p.add_argument("model", help="an exported .tflite")
    p.add_argument("--data", help="the users' folder (see --users)")
    p.add_argument("--users", required=True, choices=KINDS,
                   help="folders: DATA/<user>/<label>/<files>; speakers: DATA/<label>/<speaker>_nohash_<n>.wav; "
                        "class-subsets: users generated from DATA/<label>/<files>; manifest: --manifest FILE.csv")
    p.add_argument("--manifest", help="CSV with the columns path,user,label (paths relative to the CSV)")
    p.add_argument("--class-subsets", type=_class_counts, default="2,3,5", metavar="K,K,...",
                   help="class-subsets: how many classes each user meets, in turn")
    p.add_argument("--count", type=int, default=30, help="class-subsets: how many users")
    p.add_argument("--per-class", type=int, default=100,
                   help="class-subsets: files per class and user, half to adapt, half to score")
    p.add_argument("--skip-first", type=int, default=0, metavar="N",
                   help="class-subsets: the first N files of each class (by name) belong to nobody, e.g. the "
                        "export's normalization reference images (the vision converter uses 100)")
    p.add_argument("--min-files", type=int, default=2, help="leave out users with fewer files")
    p.add_argument("--others", type=int, default=0, metavar="N",
                   help="also score each user's model on N files of other users (what it forgets)")
    p.add_argument("--seed", type=int, default=0, help="each user's split and draws come from (seed, user index)")
    p.add_argument("--recipe", action="append", dest="recipes", metavar="RECIPE",
                   help="repeatable (default: auto and dense); see below")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: in this process; ray: Ray actors (pip install 'tflite-fineprune[ray]')")
    p.add_argument("--workers", type=int, help="ray: actors, one CPU each (default: every CPU of the cluster)")
    p.add_argument("--address", help="ray: join this cluster (default $RAY_ADDRESS, else start Ray here)")
    p.add_argument("--users-per-task", type=int,
                   help="ray: users per task (default: sized from the measured cost so that a task takes ~5 s)")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKENDS, help="which TFLite interpreter")
    p.add_argument("--batch-size", type=int, default=32, help="samples per interpreter call")
    p.add_argument("--preprocess", help="module:function turning a decoded file into samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="folder for users.csv, users.parquet, summary.json, gains.png (a rerun resumes)")
    p.epilog = EXAMPLES
    return cmd_population


def cmd_population(args):
    import sys

    from ..population import evaluate_population

    try:
        result = evaluate_population(
            args.model, args.users, recipes=args.recipes, engine=args.engine, workers=args.workers,
            address=args.address, out=args.output, data=args.data, manifest=args.manifest,
            class_subsets=args.class_subsets, count=args.count, per_class=args.per_class,
            skip_first=args.skip_first, min_files=args.min_files, others=args.others, seed=args.seed,
            backend=args.backend, batch_size=args.batch_size, preprocess=args.preprocess,
            users_per_task=args.users_per_task, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"tflite-fineprune: the users finished so far are in {args.output}/users.csv; the same command "
              "resumes from them", file=sys.stderr)
        raise
    info = result.info
    print(result)
    for note in result.notes:
        print(f"note: {note}")
    rate = info["users_per_second"]
    print(f"{info['users_evaluated_now']} users evaluated in {info['seconds']:.1f} s"
          + (f" ({rate:.2f} users/s, {info['engine']} engine, {info['workers']} worker"
             f"{'s' if info['workers'] != 1 else ''}, start-up {info['startup_seconds']:.1f} s)" if rate else "")
          + (f"; {info['users_resumed']} resumed from {args.output}" if info["users_resumed"] else "")
          + (f"; {info['failed_users']} users failed (their rows carry the error)" if info["failed_users"] else ""))
    print("wrote " + ", ".join(result.files.values()))
