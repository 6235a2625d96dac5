"""Study throughput: completed trials per hour with 1 worker, then 2 workers (one torch thread
each), on the same smoke study and the same SQLite storage, in one run. Target: 2 workers >= 1.7x.

    python benchmarks/sweep.py [--study effnet3d_sweep] [--data DIR | --phantom S] [--trials 16]

Each phase is a fresh `mgmt-audit study run` process, so both pay the same start-up: the process's
imports, and in every worker the first trial's one-off costs (model construction paths, allocator,
memory maps). A first, untimed phase prepares the data (phantom + ingest) and creates the study.
The rate is the phase's completed trials per hour between its first trial start and its last
completion (Optuna's timestamps); the wall time with process start-up is printed beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mgmt_audit.study.spec import load_study
from mgmt_audit.study.storage import default_storage, load_existing_study


def all_trials(name: str, storage: str) -> dict[tuple[str, int], Any]:
    """Every trial of the study (real and null), by (Optuna study name, trial number)."""
    pair = load_existing_study(name, storage)
    return {(study.study_name, t.number): t for study in pair.studies() for t in study.get_trials(deepcopy=False)}


def phase(name: str, runs: Path, target: int, workers: int, data: list[str]) -> tuple[float, float, int]:
    """Run the shared study on to ``target`` COMPLETE trials with ``workers`` in a new process.
    Returns the wall time (process start-up included), the rate and the trials completed."""
    storage = default_storage(name, runs)
    before = set(all_trials(name, storage)) if (runs / f"{name}.db").exists() else set()
    command = [sys.executable, "-m", "mgmt_audit.cli", "study", "run", name, "--profile", "smoke",
               *data, "--n-trials", str(target), "--workers", str(workers), "--threads", "1",
               "--runs-dir", str(runs), "--device", "cpu"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    trials = [t for key, t in all_trials(name, storage).items() if key not in before and t.state.name == "COMPLETE"]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return wall, len(trials) / span * 3600, len(trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="effnet3d_sweep", help="a study with a search space")
    parser.add_argument("--data", type=Path, help="an ingested cache (default: a phantom, see --phantom)")
    parser.add_argument("--phantom", type=float, default=0.0, help="phantom signal when no --data (default 0)")
    parser.add_argument("--trials", type=int, default=16, help="trials per worker per phase (default 16)")
    parser.add_argument("--runs-dir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    spec = load_study(args.study, "smoke")
    data = ["--data", str(args.data)] if args.data else ["--phantom", str(args.phantom)]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs_dir or Path(tmp)
        phase(spec.name, runs, 1, 1, data)  # untimed: data preparation and the study itself
        wall1, rate1, n1 = phase(spec.name, runs, 1 + args.trials, 1, data)
        wall2, rate2, n2 = phase(spec.name, runs, 1 + 3 * args.trials, 2, data)
    print(f"study {spec.name} (smoke), SQLite storage, 1 torch thread per worker, a new process per phase")
    print(f"1 worker : {rate1:8.0f} completed trials/hour ({n1} trials, wall {wall1:.1f} s with start-up)")
    print(f"2 workers: {rate2:8.0f} completed trials/hour ({n2} trials, wall {wall2:.1f} s with start-up)")
    print(f"speed-up : {rate2 / rate1:.2f}x (target >= 1.7x); wall-clock per trial {wall1 / n1 / (wall2 / n2):.2f}x")


if __name__ == "__main__":
    main()
