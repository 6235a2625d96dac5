"""``mgmt-audit confounds``: the acquisition baseline of an ingested cohort."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mgmt_audit.analysis.confounds import DEFAULT_FOLDS
from mgmt_audit.analysis.verdict import DEFAULT_MARGIN
from mgmt_audit.cli.audit import VERDICT_HELP, margin_type


def register(subparsers) -> None:
    """Add the ``confounds`` command."""
    parser = subparsers.add_parser(
        "confounds",
        help="how well the acquisition alone (plane, spacing, matrix, vendor, field strength) predicts the label",
        description=(
            "A cross-validated baseline for an ingested cache: scikit-learn's logistic regression predicts "
            "the label from acquisition facts only, per modality the plane (category), oblique angle, slice "
            "count, slice and pixel spacing and in-plane matrix of the source series, and the manufacturer "
            "and field strength (categories) when the DICOM headers had them. Its out-of-fold predictions "
            "are judged like an image model's: an image model that does not beat this baseline has not "
            "shown biology. " + VERDICT_HELP
        ),
    )
    parser.add_argument("cache", metavar="CACHE", type=Path, help="an ingested cache (folder with manifest.json)")
    parser.add_argument("--margin", type=margin_type, default=DEFAULT_MARGIN,
                        help=f"smallest AUC of interest (default: {DEFAULT_MARGIN})")
    parser.add_argument("--modalities", nargs="+", metavar="MODALITY",
                        help="modalities whose series' acquisition is used (default: every modality cached)")
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS,
                        help=f"stratified cross-validation folds (default: {DEFAULT_FOLDS}; fewer when a class is smaller)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default: 0)")
    parser.add_argument("--json", action="store_true", help="print JSON (auc, ci_low, ci_high, verdict, weights)")
    parser.set_defaults(func=_confounds)


def _confounds(args: argparse.Namespace) -> int:
    from mgmt_audit.analysis.confounds import confound_baseline, format_baseline
    from mgmt_audit.data.manifest import Manifest

    manifest = Manifest.load(args.cache)
    baseline = confound_baseline(manifest, margin=args.margin, modalities=args.modalities, folds=args.folds,
                                 seed=args.seed, cohort=str(args.cache))
    print(json.dumps(baseline.to_dict(), indent=1) if args.json else "\n".join(format_baseline(baseline)))
    return 0
