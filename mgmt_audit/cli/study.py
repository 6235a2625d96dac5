"""``mgmt-audit study list|show|run|status``: Optuna studies from the specs in ``studies/``."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

STUDY_HELP = "study name, or the path of its spec (a .toml file; the study is named after the file)"


def add_study_argument(parser: argparse.ArgumentParser) -> None:
    """The positional study argument every study command takes (dest ``name``)."""
    parser.add_argument("name", metavar="STUDY", help=STUDY_HELP)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="list, show, run and inspect the study specs (Optuna studies over seeds with nulls)",
        description=(
            "Study specs (studies/<name>.toml) describe one experiment: data, model, search space, "
            "seeds, sampler and label-permutation null trials, with a 'paper' and a 'smoke' profile."
        ),
    )
    sub = parser.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("list", help="the studies found and where they were found")
    p.set_defaults(func=_list)

    p = sub.add_parser("show", help="a study spec with one profile resolved, as TOML")
    add_study_argument(p)
    p.add_argument("--profile", default="paper", help="profile to resolve (default: paper)")
    p.set_defaults(func=_show)

    p = sub.add_parser(
        "run",
        help="run (or continue) a study until its target number of trials is complete",
        description=(
            "Run a study until --n-trials trials are COMPLETE; running again continues to the target. "
            "Several processes or machines may share one study through one --storage URL. A trial that "
            "fails for a reason of its own (non-finite loss, out of memory, a split its configuration "
            "cannot make) is recorded as FAIL with the reason and the study goes on with other "
            "configurations; an interrupted trial (Ctrl-C, a killed worker) is run again."
        ),
    )
    add_study_argument(p)
    p.add_argument("--profile", default="paper",
                   help="'paper' (published sizes, GPU) or 'smoke' (tiny, CPU) (default: paper)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, metavar="DIR",
                        help="an ingested cache (manifest.json) or a raw RSNA-MICCAI root (train_labels.csv); "
                        "required unless the study trains on digits (mnist_control writes its own)")
    source.add_argument("--phantom", type=float, nargs="?", const=0.0, metavar="S",
                        help="a phantom cohort with planted signal S (default 0: none) under RUNS_DIR/<study>/")
    p.add_argument("--shape", type=float, default=0.0, metavar="K",
                   help="with --phantom: the planted shape signal K (methylated lesions lobulated at equal "
                   "volume; 1 strong, default 0: none)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUNS_DIR/<study>.db)")
    p.add_argument("--n-trials", type=int,
                   help="target number of COMPLETE trials, null trials included (default: the profile's)")
    p.add_argument("--max-failed", type=int, metavar="N",
                   help="stop with an error once N trials have failed for reasons of their own "
                   "(default: the target number of trials)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="training device (default: auto, CUDA when present, else CPU)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--worker-index", type=int, default=0,
                   help="index of this machine's first worker (seeds its sampler); machines sharing one "
                   "--storage need non-overlapping ranges, e.g. 0 and 4 with --workers 4 (default 0)")
    p.add_argument("--threads", type=int,
                   help="torch threads per worker (default: $OMP_NUM_THREADS, else CPU cores / workers)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where trial folders go (default runs)")
    p.add_argument("--heartbeat", type=int, default=30,
                   help="seconds between trial heartbeats; a trial silent for 2x this is failed and retried "
                   "(default 30)")
    p.add_argument("--probe", action="store_true", help="also save per-layer validation features (features.npz)")
    p.add_argument("--attention", action="store_true",
                   help="also score Grad-CAM maps of each seed run on its validation patients against their "
                        "tumour masks (attention.npz; the report's 'Where the models look')")
    p.set_defaults(func=_run)

    p = sub.add_parser("status", help="the study's trials: state, seed, parameters, AUC, null flag, files, "
                       "why a trial failed")
    add_study_argument(p)
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUNS_DIR/<study>.db)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs folder of the default storage")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per trial")
    p.set_defaults(func=_status)


def _list(args: argparse.Namespace) -> int:
    from mgmt_audit.study.spec import list_studies, study_dirs

    print("searched: " + ", ".join(f"{origin} ({folder})" for folder, origin in study_dirs()))
    for name, path, origin in list_studies():
        print(f"{name:<20} {origin:<20} {path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from mgmt_audit.study.spec import load_study

    print(load_study(args.name, args.profile).to_toml(), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from mgmt_audit.study.spec import load_study
    from mgmt_audit.study.storage import default_storage
    from mgmt_audit.study.worker import RunOptions, run_study

    spec = load_study(args.name, args.profile)
    options = RunOptions(
        storage=args.storage or default_storage(spec.name, args.runs_dir),
        runs_dir=args.runs_dir,
        n_trials=args.n_trials or spec.n_trials,
        device=args.device,
        workers=args.workers,
        worker_index=args.worker_index,
        threads=args.threads,
        heartbeat=args.heartbeat,
        max_failed=args.max_failed,
        probe=args.probe,
        attention=args.attention,
    )
    counts = run_study(spec, options, data=args.data, phantom=args.phantom, shape=args.shape)
    print("trials: " + ", ".join(f"{state} {n}" for state, n in sorted(counts.items())))
    return 0


def _status(args: argparse.Namespace) -> int:
    from mgmt_audit.study.spec import study_name
    from mgmt_audit.study.status import format_table, trial_rows
    from mgmt_audit.study.storage import default_storage, load_existing_study

    name = study_name(args.name)
    pair = load_existing_study(name, args.storage or default_storage(name, args.runs_dir))
    rows = trial_rows(pair)
    print(json.dumps([asdict(r) for r in rows], indent=1) if args.json else format_table(rows, pair.user_attrs))
    return 0
