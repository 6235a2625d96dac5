"""``mgmt-audit audit`` (per-patient predictions) and ``audit-claim`` (a reported AUC)."""

from __future__ import annotations

import argparse
import json

from mgmt_audit.analysis.verdict import DEFAULT_MARGIN

VERDICT_HELP = (
    "Verdicts, at one-sided alpha 0.05 against the margin (the smallest AUC of interest): signal "
    "(beyond chance after selection, AUC >= margin not excluded), signal_below_margin (beyond chance, "
    "AUC >= margin excluded), no_signal (not beyond chance, AUC >= margin and an inverted signal both "
    "excluded), inconclusive (anything else, with what cannot be excluded)."
)


def margin_type(text: str) -> float:
    """argparse type of a margin: an AUC in (0.5, 1]."""
    value = float(text)
    if not 0.5 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"the margin is an AUC in (0.5, 1], got {text}")
    return value


def register(subparsers) -> None:
    """Add the ``audit`` and ``audit-claim`` commands."""
    audit = subparsers.add_parser(
        "audit",
        help="audit someone's per-patient predictions (one or many runs, folds, slices)",
        description=(
            "For a reviewer holding predictions: one AUC per run with its interval and test, runs on "
            "the same patients judged together (mean AUC, DeLong covariance, permutation test), "
            "cross-validation folds pooled out-of-fold, slice-level rows averaged per patient, patients "
            "leaked across splits or folds flagged, and the verdict. " + VERDICT_HELP
        ),
    )
    audit.add_argument("predictions", metavar="PREDICTIONS.csv", help="CSV with a header row")
    audit.add_argument("--label-col", default="label", help="0/1 label column (default: label)")
    audit.add_argument("--prob-col", default="prob", help="score or probability column (default: prob)")
    audit.add_argument("--run-col", help="column naming each row's run or seed (default: one run)")
    audit.add_argument("--id-col", help="patient ID column: averages slice rows, matches runs, checks splits")
    audit.add_argument("--fold-col", help="cross-validation fold column: pool out-of-fold predictions "
                                          "into one AUC over all patients (needs --id-col)")
    audit.add_argument("--split-col", help="column naming each row's split: flags patients in more than "
                                           "one split (needs --id-col)")
    audit.add_argument("--eval-split", help="with --split-col: audit this split's rows only")
    audit.add_argument("--trials-tried", type=int, metavar="N",
                       help="configurations the reported one was chosen from (default: 1, no selection; "
                            "the seeds of one configuration do not count)")
    audit.add_argument("--margin", type=margin_type, default=DEFAULT_MARGIN,
                       help=f"smallest AUC of interest (default: {DEFAULT_MARGIN})")
    audit.add_argument("--json", action="store_true", help="print JSON instead of a table")
    audit.add_argument("--out", metavar="DIR", help="also write DIR/audit.json")
    audit.set_defaults(func=_audit)

    claim = subparsers.add_parser(
        "audit-claim",
        help="audit an AUC reported in a paper from its class sizes",
        description=(
            "For a number in a paper: the interval its printed digits stand for, the Hanley-McNeil "
            "interval, the one-sided test against chance, the correction for picking the best of N "
            "trials, and the verdict judged at both ends of the rounding. " + VERDICT_HELP
        ),
    )
    claim.add_argument("--auc", required=True, metavar="AUC",
                       help="the reported AUC as printed: 0.59, or 59%% (its digits set its precision)")
    claim.add_argument("--n-pos", type=int, required=True, help="positive cases in the test set")
    claim.add_argument("--n-neg", type=int, required=True, help="negative cases in the test set")
    claim.add_argument("--trials-tried", type=int, default=1, metavar="N",
                       help="trials (configurations, seeds) the number was the best of (default: 1)")
    claim.add_argument("--margin", type=margin_type, default=DEFAULT_MARGIN,
                       help=f"smallest AUC of interest (default: {DEFAULT_MARGIN})")
    claim.add_argument("--json", action="store_true", help="print JSON instead of text")
    claim.set_defaults(func=_audit_claim)


def _audit(args: argparse.Namespace) -> int:
    from mgmt_audit.analysis.audit import audit_predictions, format_audit, save_audit

    result = audit_predictions(
        args.predictions, args.label_col, args.prob_col, args.run_col, args.id_col, args.split_col,
        args.trials_tried, args.eval_split, fold_col=args.fold_col, margin=args.margin,
    )
    if args.out:
        save_audit(result, args.out)
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_audit(result))
    return 0


def _audit_claim(args: argparse.Namespace) -> int:
    from mgmt_audit.analysis.claim import audit_claim, format_claim

    result = audit_claim(args.auc, args.n_pos, args.n_neg, args.trials_tried, margin=args.margin)
    print(json.dumps(result.to_dict(), indent=1) if args.json else format_claim(result))
    return 0
