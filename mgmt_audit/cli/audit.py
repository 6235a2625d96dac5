"""``mgmt-audit audit`` (per-patient predictions) and ``audit-claim`` (a reported AUC)."""

from __future__ import annotations

import argparse
import json


def register(subparsers) -> None:
    """Add the ``audit`` and ``audit-claim`` commands."""
    audit = subparsers.add_parser(
        "audit",
        help="audit someone's per-patient predictions (one or many runs)",
        description=(
            "For a reviewer holding per-patient predictions: AUC with DeLong CI and Mann-Whitney p "
            "per run and pooled, the best run against the best of N null runs, prediction "
            "bimodality and class overlap, patients leaked across splits, and a verdict "
            "(signal / no_signal / inconclusive)."
        ),
    )
    audit.add_argument("predictions", metavar="PREDICTIONS.csv", help="CSV with a header row")
    audit.add_argument("--label-col", default="label", help="0/1 label column (default: label)")
    audit.add_argument(
        "--prob-col", default="prob", help="score or probability column (default: prob)"
    )
    audit.add_argument("--run-col", help="column naming each row's run/seed (default: one run)")
    audit.add_argument("--id-col", help="patient ID column (for --split-col and pooling seeds)")
    audit.add_argument(
        "--split-col", help="column naming each row's split: flags patients in more than one split"
    )
    audit.add_argument(
        "--eval-split", help="with --split-col: compute the statistics on this split's rows only"
    )
    audit.add_argument(
        "--trials-tried", type=int, metavar="N",
        help="how many trials (configurations, seeds) the reported runs were chosen from",
    )
    audit.add_argument("--json", action="store_true", help="print JSON instead of a table")
    audit.add_argument("--out", metavar="DIR", help="also write DIR/audit.json")
    audit.set_defaults(func=_audit)

    claim = subparsers.add_parser(
        "audit-claim",
        help="audit an AUC reported in a paper from its class sizes",
        description=(
            "For a number in a paper: Hanley-McNeil CI, one-sided p against chance, the p after "
            "selecting the best of N trials, the AUC the best of N null runs is expected to reach, "
            "and a verdict in plain words."
        ),
    )
    claim.add_argument("--auc", type=float, required=True, help="the reported AUC")
    claim.add_argument("--n-pos", type=int, required=True, help="positive cases in the test set")
    claim.add_argument("--n-neg", type=int, required=True, help="negative cases in the test set")
    claim.add_argument(
        "--trials-tried", type=int, default=1, metavar="N",
        help="trials (seeds, configurations) the number was the best of (default: 1)",
    )
    claim.add_argument("--json", action="store_true", help="print JSON instead of text")
    claim.set_defaults(func=_audit_claim)


def _audit(args: argparse.Namespace) -> int:
    from mgmt_audit.analysis.audit import audit_predictions, format_audit, save_audit

    result = audit_predictions(
        args.predictions, args.label_col, args.prob_col, args.run_col, args.id_col,
        args.split_col, args.trials_tried, args.eval_split,
    )
    if args.out:
        save_audit(result, args.out)
    print(json.dumps(result, indent=1) if args.json else format_audit(result))
    return 0


def _audit_claim(args: argparse.Namespace) -> int:
    from mgmt_audit.analysis.audit import audit_claim, format_claim

    result = audit_claim(args.auc, args.n_pos, args.n_neg, args.trials_tried)
    print(json.dumps(result, indent=1) if args.json else format_claim(result))
    return 0
