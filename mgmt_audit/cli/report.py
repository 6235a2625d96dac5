"""``mgmt-audit report NAME``: one study's self-contained HTML report and summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="build a study's HTML report (verdicts, AUCs vs nulls, probabilities, losses, probes)",
        description=(
            "Read a study's trials from its Optuna storage and their run folders, judge every "
            "configuration against chance and write OUT/index.html (self-contained: figures embedded, "
            "no network access needed, printable) and OUT/summary.json (verdicts and headline numbers)."
        ),
    )
    parser.add_argument("name", help="study name (as given to `mgmt-audit study run`)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUNS_DIR/NAME.db)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="folder the study ran in: default storage and ingested caches (default: runs)")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/NAME)")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from mgmt_audit.report.build import report_study

    path = report_study(args.name, storage=args.storage, runs_dir=args.runs_dir, out=args.out)
    print(f"report: {path}")
    print(f"summary: {path.with_name('summary.json')}")
    return 0
