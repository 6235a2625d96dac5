"""Study throughput: completed trials per hour with 1 worker, then 2 workers (one torch thread
each), on the same smoke study and the same SQLite storage, in one run. Target: 2 workers >= 1.7x.

    python benchmarks/sweep.py [--study demo] [--data DIR | --phantom S] [--trials 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mgmt_audit.config import load_study
from mgmt_audit.study.runner import RunOptions, default_storage, load_existing_study, run_study


def phase(spec, runs: Path, target: int, workers: int, **data) -> tuple[float, float]:
    """Run the shared study on to ``target`` COMPLETE trials with ``workers``. Returns the wall time
    (process start-up included) and the steady rate: trials completed in this phase per hour between
    the phase's first trial start and last trial completion (Optuna's timestamps)."""
    options = RunOptions(storage=default_storage(spec.name, runs), runs_dir=runs, n_trials=target,
                         workers=workers, threads=1, progress=False)
    before = len(load_existing_study(spec.name, options.storage).trials) if (runs / f"{spec.name}.db").exists() else 0
    started = time.perf_counter()
    run_study(spec, options, log=lambda line: None, **data)
    wall = time.perf_counter() - started
    trials = [t for t in load_existing_study(spec.name, options.storage).trials[before:] if t.state.name == "COMPLETE"]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return wall, len(trials) / span * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="demo")
    parser.add_argument("--data", type=Path, help="an ingested cache (default: a phantom, see --phantom)")
    parser.add_argument("--phantom", type=float, default=0.0, help="phantom signal when no --data (default 0)")
    parser.add_argument("--trials", type=int, default=6, help="trials per phase (default 6)")
    parser.add_argument("--runs-dir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    spec = load_study(args.study, "smoke")
    data = {"data": args.data} if args.data else {"phantom": args.phantom}
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs_dir or Path(tmp)
        phase(spec, runs, 1, 1, **data)  # warm-up: data preparation and the study itself
        wall1, rate1 = phase(spec, runs, 1 + args.trials, 1, **data)
        wall2, rate2 = phase(spec, runs, 1 + 2 * args.trials, 2, **data)
    print(f"study {spec.name} (smoke), {args.trials} trials per phase, SQLite storage, 1 torch thread per worker")
    print(f"1 worker : {rate1:8.0f} completed trials/hour (wall {wall1:.1f} s with start-up)")
    print(f"2 workers: {rate2:8.0f} completed trials/hour (wall {wall2:.1f} s with start-up)")
    print(f"speed-up : {rate2 / rate1:.2f}x (target >= 1.7x); wall-clock {wall1 / wall2:.2f}x")

if __name__ == "__main__":
    main()
