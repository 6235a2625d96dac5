"""``mgmt-audit audit`` (per-patient predictions) and ``audit-claim`` (numbers reported in a paper)."""

from __future__ import annotations

import argparse
import json

from mgmt_audit.analysis.claims.metrics import AVERAGE_CHOICES
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
        help="audit numbers reported in a paper (AUC, accuracy, sensitivity, ...) from the class sizes",
        description=(
            "For numbers in a paper: are they arithmetically possible together (is there a confusion "
            "matrix, or a set of fold matrices, that reproduces every printed number to its digits, "
            "rounded or truncated, under binary, micro, macro or weighted averaging)? What exact "
            "intervals do they carry, are they beyond chance and beyond the no-information rate after "
            "picking the best of N trials, what AUC does the operating point imply, and the verdict. A "
            "reported AUC is judged as an AUC (Hanley-McNeil, Mann-Whitney); accuracy-type numbers on the "
            "AUC their operating point implies (never read as an AUC). " + VERDICT_HELP
        ),
    )
    metrics = claim.add_argument_group("reported numbers, as printed: 0.947 or 94.7% (the digits set the precision)")
    metrics.add_argument("--auc", metavar="AUC", help="area under the ROC curve")
    metrics.add_argument("--accuracy", metavar="ACC", help="accuracy (share correct)")
    metrics.add_argument("--sensitivity", "--recall", dest="sensitivity", metavar="SENS",
                         help="sensitivity = recall = true positive rate")
    metrics.add_argument("--specificity", metavar="SPEC", help="specificity = true negative rate")
    metrics.add_argument("--precision", "--ppv", dest="precision", metavar="PPV",
                         help="precision = positive predictive value")
    metrics.add_argument("--npv", metavar="NPV", help="negative predictive value")
    metrics.add_argument("--f1", metavar="F1", help="F1 score")
    metrics.add_argument("--balanced-accuracy", dest="balanced_accuracy", metavar="BACC",
                         help="balanced accuracy (mean recall)")
    design = claim.add_argument_group("what the numbers were measured on")
    design.add_argument("--n-pos", type=int, help="positive cases in the evaluation set (with --n-neg)")
    design.add_argument("--n-neg", type=int, help="negative cases in the evaluation set (with --n-pos)")
    design.add_argument("--n", type=int, help="cases in the evaluation set when the class split is not "
                                              "reported: every split is searched")
    design.add_argument("--class-sizes", type=_sizes, metavar="N1,N2,...",
                        help="cases per class of a multi-class claim (sets --classes and the no-information rate)")
    design.add_argument("--classes", type=int, default=2, help="number of classes (default: 2)")
    design.add_argument("--folds", type=int, metavar="K",
                        help="k-fold cross-validation: checked as counts pooled over the folds and as a "
                             "mean of fold scores")
    design.add_argument("--average", default="any", choices=AVERAGE_CHOICES,
                        help="how precision / recall / F1 were averaged: binary (the stated positive class), "
                             "micro, macro, weighted, or any (default: try each, and binary with either class "
                             "positive)")
    design.add_argument("--trials-tried", type=int, default=1, metavar="N",
                        help="trials (configurations, seeds) the numbers were the best of (default: 1)")
    claim.add_argument("--margin", type=margin_type, default=DEFAULT_MARGIN,
                       help=f"smallest AUC of interest (default: {DEFAULT_MARGIN})")
    claim.add_argument("--literature", nargs="?", const="", metavar="FILE",
                       help="audit the published claims instead: data_manifests/claims/ (default) or a "
                            "TOML file or folder of them; one row per claim")
    claim.add_argument("--format", choices=("text", "review", "json"), default="text",
                       help="text (default), review (a paragraph a referee can paste), or json")
    claim.add_argument("--json", action="store_true", help="print JSON (same as --format json)")
    claim.set_defaults(func=_audit_claim)


def _sizes(text: str) -> tuple[int, ...]:
    """argparse type of --class-sizes: "66,31,20"."""
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"class sizes are whole numbers separated by commas, got {text!r}")
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"give at least two class sizes, each >= 1, got {text!r}")
    return sizes


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
    from mgmt_audit.analysis.claims import audit_claim
    from mgmt_audit.analysis.claims.metrics import METRICS
    from mgmt_audit.analysis.claims.text import format_claim, format_review

    fmt = "json" if args.json else args.format
    if args.literature is not None:
        return _literature(args, fmt)
    given = {m: getattr(args, m) for m in METRICS if getattr(args, m) is not None}
    result = audit_claim(given, n_pos=args.n_pos, n_neg=args.n_neg, n=args.n, folds=args.folds,
                         average=args.average, classes=args.classes, class_sizes=args.class_sizes,
                         trials_tried=args.trials_tried, margin=args.margin)
    if fmt == "json":
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(format_review(result) if fmt == "review" else format_claim(result))
    return 0


def _literature(args: argparse.Namespace, fmt: str) -> int:
    from mgmt_audit.analysis.claims.literature import audit_literature, format_literature, load_claims
    from mgmt_audit.analysis.claims.text import format_review

    rows = audit_literature(load_claims(args.literature or None), margin=args.margin)
    if fmt == "json":
        print(json.dumps({"claims": [row.to_dict() for row in rows]}, indent=1))
    elif fmt == "review":
        print("\n\n".join(f"{row.claim.id} ({row.claim.quoted_from}): {format_review(row.result)}" for row in rows))
    else:
        print(format_literature(rows))
    return 0
