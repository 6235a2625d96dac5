"""``mgmt-audit report NAME``: one study's self-contained HTML report and summary.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mgmt_audit.cli.audit import margin_type
from mgmt_audit.cli.study import add_study_argument


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
    add_study_argument(parser)
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///RUNS_DIR/NAME.db)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="folder the study ran in: default storage and ingested caches (default: runs)")
    parser.add_argument("--out", type=Path, help="output folder (default: reports/NAME)")
    parser.add_argument("--margin", type=margin_type, metavar="AUC",
                        help="smallest AUC of interest the verdicts are judged against (default: the spec's "
                             "[analysis] margin, else 0.65)")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from mgmt_audit.report.build import report_study
    from mgmt_audit.study.spec import study_name

    path = report_study(study_name(args.name), storage=args.storage, runs_dir=args.runs_dir, out=args.out,
                        margin=args.margin)
    summary = json.loads(path.with_name("summary.json").read_text())
    for line in verdict_table(summary):
        print(line)
    print(f"report: {path}")
    print(f"summary: {path.with_name('summary.json')}")
    return 0


def verdict_table(summary: dict) -> list[str]:
    """The report's By cohort table as printed lines: cohort, n, AUC with its 90% interval, verdict,
    what the data exclude, and against a phantom's expectation whether the verdict is right."""
    rows = [("cohort", "n (pos/neg)", "AUC [90% interval]", "verdict", "what the data exclude", "expected")]
    for c in summary["cohorts"]:
        status = "" if c["status"] is None else f"{c['status']}: {c['expected']}"
        auc = f"{c['auc']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]"
        rows.append((c["cohort"], f"{c['n_pos']}/{c['n_neg']}", auc, c["verdict"], c["bound_words"], status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"verdicts at margin {summary['margin']:g}:"]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
              for row in rows]
    return [line.rstrip() for line in lines]
