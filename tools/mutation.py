"""Mutation testing of the core packages with mutmut (not run in CI: CPU-heavy).

Each target names the modules to mutate and the fast tests that cover them; mutmut records which of
those tests reach each function and runs only them against that function's mutants. The run works on
a copy of the working tree (tracked and untracked, not ignored files) under ``--work`` so that the
checkout is never touched, and prints the score per file and the surviving mutants.

    flock /tmp/mgmt-heavy.lock .venv/bin/python tools/mutation.py analysis
    flock /tmp/mgmt-heavy.lock .venv/bin/python tools/mutation.py study --sample 300
    nice -n 19 .venv/bin/python tools/mutation.py analysis --sample 150 --seed 0 --children 1  # shared CPUs

``--sample N`` tests N mutants drawn at random (``--seed``) after the mutants are generated, for
targets whose full run would take hours; the score is then an estimate with its binomial error.
Needs mutmut (``pip install 'mutmut==3.8.1'``, the ``mutation`` extra). A result per mutant is kept in
the work folder, so a re-run resumes (a sampled run names mutmut only the mutants not yet tested:
mutmut re-tests every mutant it is named); ``mutmut show NAME`` there prints a mutant's diff.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# target -> (files to mutate, the fast tests that exercise them; slow end-to-end tests left out)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "analysis": (
        ["mgmt_audit/analysis/*"],
        ["tests/test_auc.py", "tests/test_nulls.py", "tests/test_verdict.py", "tests/test_verdict_rules.py",
         "tests/test_bimodality.py", "tests/test_chance_loss.py", "tests/test_reported.py",
         "tests/test_probes.py", "tests/test_audit_cli.py", "tests/test_claims_cli.py",
         "tests/test_claims_consistency.py", "tests/test_claims_inference.py", "tests/test_analysis_contracts.py"],
    ),
    "dicom": (
        ["mgmt_audit/data/dicom.py"],
        ["tests/test_dicom.py", "tests/test_dicom_files.py", "tests/test_grid.py"],
    ),
    "preprocess": (
        ["mgmt_audit/data/preprocess.py", "mgmt_audit/data/resample.py"],
        ["tests/test_preprocess.py", "tests/test_grid.py"],
    ),
    "loop": (
        ["mgmt_audit/train/loop.py"],
        ["tests/test_train.py", "tests/test_leakage.py", "-m", "not slow"],  # test_leakage: the slice split
    ),
    "study": (
        ["mgmt_audit/study/*"],
        ["tests/test_scheduler.py", "tests/test_config.py", "tests/test_study.py", "tests/test_study_cli.py",
         "tests/test_study_data.py", "tests/test_study_digits.py", "-m", "not slow"],  # the last two: data.py
    ),
}
STATUSES = ("killed", "survived", "timeout", "suspicious", "no tests", "segfault", "skipped")


def copy_tree(work: Path) -> None:
    """The working tree's tracked and untracked (not ignored) files, copied into ``work``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def configure(work: Path, modules: list[str], tests: list[str]) -> None:
    """Append the target's ``[tool.mutmut]`` section to the copy's pyproject.toml."""
    existing = [t for t in tests if not t.startswith("tests/") or (work / t).is_file()]
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["mgmt_audit"]\n'
        'also_copy = ["data_manifests", "studies"]\n'  # read by the code under test
        f"only_mutate = {json.dumps(modules)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(existing)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:xdist"]\n'
        'process_isolation = "forkserver"\n'  # torch is not fork-safe after pytest has imported it
        "use_git_change_detection = false\n"
    )
    with (work / "pyproject.toml").open("a") as handle:
        handle.write(section)


def mutant_names(work: Path) -> list[str]:
    """Every mutant mutmut generated, read from the mutated copies (``x_<function>__mutmut_<n>``)."""
    names = []
    for path in sorted((work / "mutants" / "mgmt_audit").rglob("*.py")):
        module = ".".join(path.relative_to(work / "mutants").with_suffix("").parts)
        for function in re.findall(r"^\s*def (x\S*?__mutmut_\d+)\(", path.read_text(), flags=re.M):
            names.append(f"{module}.{function}")
    return names


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, text=True, capture_output=True)


def results(work: Path) -> dict[str, str]:
    """Status of every tested mutant, by name."""
    out = mutmut(work, "results", "--all", "true").stdout
    return dict(re.findall(r"^\s+(\S+): (.+)$", out, flags=re.M))


def summary(statuses: dict[str, str], sampled: int | None) -> str:
    """Score per file and overall: killed (timeouts count as killed) over the mutants tested."""
    by_file: dict[str, Counter] = {}
    for name, status in statuses.items():
        module = name.split(".x")[0]
        by_file.setdefault(module, Counter())[status] += 1
    lines = [f"{'module':<44}{'killed':>8}{'survived':>10}{'other':>7}{'score':>8}"]
    total = Counter()
    for module, counts in sorted(by_file.items()):
        total.update(counts)
        lines.append(_row(module, counts))
    lines.append(_row("all", total))
    tested = total["killed"] + total["timeout"] + total["survived"]
    if sampled and tested:
        score = (total["killed"] + total["timeout"]) / tested
        lines.append(f"sample of {sampled} mutants: score {100 * score:.1f} % "
                     f"+/- {100 * 1.96 * math.sqrt(score * (1 - score) / tested):.1f} (95 %)")
    return "\n".join(lines)


def _row(module: str, counts: Counter) -> str:
    killed = counts["killed"] + counts["timeout"]
    tested = killed + counts["survived"]
    other = sum(counts.values()) - tested
    score = f"{100 * killed / tested:.1f}%" if tested else "-"
    return f"{module:<44}{killed:>8}{counts['survived']:>10}{other:>7}{score:>8}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/mgmt-mutation"),
                        help="parent of the per-target work folders (default: %(default)s)")
    parser.add_argument("--sample", type=int, help="test this many mutants drawn at random, not all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--fresh", action="store_true", help="discard an earlier run's work folder")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("mutmut") is None:  # else every mutmut call fails and "0 of 0 mutants" follows
        print("mutmut is not installed in this environment: pip install 'mutmut==3.8.1' (the mutation extra)",
              file=sys.stderr)
        return 2

    modules, tests = TARGETS[args.target]
    work = args.work / args.target
    if args.fresh and work.exists():
        shutil.rmtree(work)
    if not (work / "pyproject.toml").is_file():
        copy_tree(work)
        configure(work, modules, tests)
    names: list[str] = []
    if args.sample:
        if not (work / "mutants").is_dir():  # generate the mutants and the test stats; mutmut then
            # stops, as no mutant has that name
            mutmut(work, "run", "--max-children", str(args.children), "no-such-mutant")
        everything = mutant_names(work)
        names = sorted(random.Random(args.seed).sample(everything, min(args.sample, len(everything))))
        print(f"{len(names)} of {len(everything)} mutants sampled (seed {args.seed})")
        done = results(work)  # mutmut re-tests every mutant named to it: name only those not yet tested
        todo = [name for name in names if done.get(name, "not checked") == "not checked"]
    else:
        todo = []
    if todo or not names:
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.children), *todo],
                             cwd=work, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with (work / "mutmut-run.log").open("a") as log:
            log.write(run.stdout)
    statuses = results(work)
    if names:
        statuses = {k: v for k, v in statuses.items() if k in set(names)}
    print(summary(statuses, len(names) or None))
    survivors = sorted(k for k, v in statuses.items() if v == "survived")
    print(f"\n{len(survivors)} surviving mutants (`mutmut show NAME` in {work}):")
    print("\n".join(f"  {name}" for name in survivors))
    (work / "survivors.txt").write_text("\n".join(survivors) + "\n")
    return 0 if statuses else 1


if __name__ == "__main__":
    sys.exit(main())
