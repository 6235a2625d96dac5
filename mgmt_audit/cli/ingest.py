"""``mgmt-audit ingest`` (DICOM or BraTS Task-1 cohort -> preprocessed cache + manifest) and
``mgmt-audit brats-overlap`` (Task-1 cases that are also in a validation set)."""

from __future__ import annotations

import argparse

from mgmt_audit.data.manifest import MODALITIES


def register(subparsers: argparse._SubParsersAction) -> None:
    from mgmt_audit.data.preprocess import FOREGROUNDS, NORMALISATIONS, SLICE_MODES, PreprocessSpec

    default = PreprocessSpec()
    parser = subparsers.add_parser(
        "ingest",
        help="read a cohort's series, preprocess them and cache arrays with a manifest",
        description=(
            "Read every patient's series (RSNA-MICCAI layout ROOT[/train]/<5-digit id>/{FLAIR,T1w,T1wCE,T2w}/"
            "Image-<n>.dcm, or BraTS 2021 Task-1 NIfTI with --layout brats-task1), preprocess them and cache "
            "OUT/<preprocess hash>/<id>/<MODALITY>.npy (float32, H x W x D, axial slices last) with "
            "OUT/manifest.json. Bad series are quarantined with their reason and the rest goes on; a re-run "
            "skips patients whose files and preprocessing are unchanged. Exit status 1 only when nothing "
            "usable was produced."
        ),
    )
    parser.add_argument("root", help="cohort folder (ROOT or ROOT/train; the Task-1 folder with --layout brats-task1)")
    parser.add_argument("--labels", required=True, help="labels CSV with columns BraTS21ID,MGMT_value")
    parser.add_argument("--out", required=True, help="cache folder (arrays per preprocessing hash, manifest.json)")
    parser.add_argument("--layout", choices=("rsna-miccai", "brats-task1"), default="rsna-miccai",
                        help="source layout (default: %(default)s)")
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES),
                        help="modalities to ingest (default: all four)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes, one patient each at a time (default: CPU count, at most 8)")
    parser.add_argument("--export-nifti", action="store_true",
                        help="also write each reoriented source volume to OUT/nifti/<id>/<MODALITY>.nii.gz")
    parser.add_argument("--dataset", default="rsna_miccai_2021",
                        help="dataset description in data_manifests/ (name or .toml path; 'none' for none): "
                             "flagged cases and split seed (default: %(default)s)")
    parser.add_argument("--exclude-flagged", action=argparse.BooleanOptionalAction, default=None,
                        help="exclude the cases the dataset description flags (default: as the description says)")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="split seed to record (default: the dataset description's)")
    spec = parser.add_argument_group("preprocessing (every value is recorded and hashed into the cache key)")
    spec.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=list(default.size),
                      help="in-plane size (default: %(default)s)")
    spec.add_argument("--depth", type=int, default=default.depth, help="slices D (default: %(default)s)")
    spec.add_argument("--slice-mode", choices=SLICE_MODES, default=default.slice_mode,
                      help="centre: D slices around the largest-brain-area slice, zero-padded at the ends; "
                           "resample: the brain's axial extent resampled to D (default: %(default)s)")
    spec.add_argument("--normalise", choices=NORMALISATIONS, default=default.normalise,
                      help="per-volume intensity normalisation over brain voxels (default: %(default)s)")
    spec.add_argument("--clahe", action="store_true", help="3D CLAHE before normalisation")
    spec.add_argument("--clahe-clip", type=float, default=default.clahe_clip,
                      help="CLAHE clip limit (default: %(default)s)")
    spec.add_argument("--foreground", choices=FOREGROUNDS, default=default.foreground,
                      help="brain foreground for the crop and the statistics (default: %(default)s)")
    spec.add_argument("--threshold", type=float, default=default.threshold,
                      help="intensity above which a voxel is foreground with --foreground threshold")
    spec.add_argument("--margin", type=int, default=default.margin,
                      help="voxels around the brain's bounding box (default: %(default)s)")
    spec.add_argument("--no-square", dest="square", action="store_false",
                      help="resize the crop as is instead of padding it to a square (aspect ratio kept)")
    parser.set_defaults(func=run_ingest)

    overlap = subparsers.add_parser(
        "brats-overlap",
        help="list BraTS 2021 Task-1 cases that are also in a validation set (exit 1 when any)",
        description=(
            "Pre-training on BraTS Task-1 cases that are in the validation set leaks them. Lists the IDs "
            "in both; exit status 1 when there is any overlap."
        ),
    )
    overlap.add_argument("task1_root", help="folder holding BraTS2021_<id>/ case folders")
    overlap.add_argument("--ids", required=True,
                         help="validation IDs: a CSV with a BraTS21ID (or id) column, or one ID per line")
    overlap.set_defaults(func=run_overlap)


def run_ingest(args: argparse.Namespace) -> int:
    from mgmt_audit.data.ingest import default_workers, format_summary, ingest, usable_count
    from mgmt_audit.data.preprocess import PreprocessSpec

    spec = PreprocessSpec(
        size=tuple(args.size), depth=args.depth, slice_mode=args.slice_mode, normalise=args.normalise,
        clahe=args.clahe, clahe_clip=args.clahe_clip, foreground=args.foreground, threshold=args.threshold,
        margin=args.margin, square=args.square,
    )
    result = ingest(
        args.root, args.labels, args.out, spec=spec, modalities=args.modalities, layout=args.layout,
        dataset=args.dataset, exclude_flagged=args.exclude_flagged, split_seed=args.split_seed,
        workers=args.workers or default_workers(), export_nifti=args.export_nifti,
    )
    print(format_summary(result))
    if usable_count(result.manifest) == 0:
        print("nothing usable: no labelled patient has a cached series (see the reasons above)")
        return 1
    return 0


def run_overlap(args: argparse.Namespace) -> int:
    from mgmt_audit.data.brats import task1_overlap

    overlap = task1_overlap(args.task1_root, args.ids)
    if not overlap:
        print("no overlap: no Task-1 case is in the given ID set")
        return 0
    print(f"{len(overlap)} Task-1 case(s) in the given ID set (pre-training on them would leak): {' '.join(overlap)}")
    return 1
