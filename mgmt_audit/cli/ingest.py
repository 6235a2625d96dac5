"""``mgmt-audit ingest`` (DICOM or BraTS Task-1 cohort -> preprocessed cache + manifest) and
``mgmt-audit brats-overlap`` (Task-1 cases that are also in a validation set)."""

from __future__ import annotations

import argparse

from mgmt_audit.data.manifest import MODALITIES


def register(subparsers: argparse._SubParsersAction) -> None:
    from mgmt_audit.data.preprocess import (
        FIELD_OF_VIEW_MM,
        FOREGROUNDS,
        NORMALISATIONS,
        SLAB_MM,
        SLICE_MODES,
        PreprocessSpec,
    )

    default = PreprocessSpec()
    parser = subparsers.add_parser(
        "ingest",
        help="read a cohort's series, preprocess them and cache arrays with a manifest",
        description=(
            "Read every patient's series (RSNA-MICCAI layout ROOT[/train]/<5-digit id>/{FLAIR,T1w,T1wCE,T2w}/"
            "Image-<n>.dcm, or BraTS 2021 Task-1 NIfTI with --layout brats-task1), resample each series once "
            "onto an axial RAS+ grid of --spacing mm (any acquisition plane), and cache "
            "OUT/<preprocess hash>/<id>/<MODALITY>.npy (float32, H x W x D, axial slices last) with "
            "OUT/manifest.json. Prints the disk space it will take before starting and a progress bar while it "
            "runs. --study NAME takes the preprocessing and the modalities a study reads from its spec. Bad "
            "series are quarantined with their reason and the rest goes on; a re-run skips patients whose "
            "files and preprocessing are unchanged. Exit status 1 only when nothing usable was produced."
        ),
    )
    parser.add_argument("root", help="cohort folder (ROOT or ROOT/train; the Task-1 folder with --layout brats-task1)")
    parser.add_argument("--labels", required=True, help="labels CSV with columns BraTS21ID,MGMT_value")
    parser.add_argument("--out", required=True, help="cache folder (arrays per preprocessing hash, manifest.json)")
    parser.add_argument("--layout", choices=("rsna-miccai", "brats-task1"), default="rsna-miccai",
                        help="source layout (default: %(default)s)")
    parser.add_argument("--modalities", nargs="+", choices=MODALITIES, default=None,
                        help="modalities to ingest (default: those --study reads, else all four)")
    parser.add_argument("--study", default=None,
                        help="take the preprocessing and modalities from this study spec (name or .toml path); "
                             "the preprocessing options below then must not be given")
    parser.add_argument("--profile", default="paper", help="profile of --study (default: %(default)s)")
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
    spec.add_argument("--size", nargs=2, type=int, metavar=("H", "W"), default=None,
                      help=f"in-plane size in voxels (default: {list(default.size)})")
    spec.add_argument("--depth", type=int, default=None, help=f"slices D (default: {default.depth})")
    spec.add_argument("--spacing", nargs=3, type=float, metavar=("R", "A", "S"), default=None,
                      help=f"voxel size in mm (default: a {FIELD_OF_VIEW_MM:g} mm field of view over H and W and "
                           f"a {SLAB_MM:g} mm slab over D)")
    spec.add_argument("--slice-mode", choices=SLICE_MODES, default=None,
                      help="centre: D slices around the level with the largest head cross-section, zero where "
                           "they leave the head; resample: the head's axial extent divided into D slices "
                           f"(default: {default.slice_mode})")
    spec.add_argument("--normalise", choices=NORMALISATIONS, default=None,
                      help=f"per-volume intensity normalisation over head voxels (default: {default.normalise})")
    spec.add_argument("--clahe", action="store_true", default=None, help="3D CLAHE before normalisation")
    spec.add_argument("--clahe-clip", type=float, default=None,
                      help=f"CLAHE clip limit (default: {default.clahe_clip})")
    spec.add_argument("--foreground", choices=FOREGROUNDS, default=None,
                      help="head foreground that places the grid and gives the statistics "
                           f"(default: {default.foreground})")
    spec.add_argument("--threshold", type=float, default=None,
                      help="intensity above which a voxel is foreground with --foreground threshold")
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


SPEC_FLAGS = {"size": "--size", "depth": "--depth", "spacing": "--spacing", "slice_mode": "--slice-mode",
              "normalise": "--normalise", "clahe": "--clahe", "clahe_clip": "--clahe-clip",
              "foreground": "--foreground", "threshold": "--threshold"}


def run_ingest(args: argparse.Namespace) -> int:
    from mgmt_audit.data.ingest import default_workers, format_summary, ingest, usable_count

    spec, modalities = _spec_and_modalities(args)
    result = ingest(
        args.root, args.labels, args.out, spec=spec, modalities=modalities, layout=args.layout,
        dataset=args.dataset, exclude_flagged=args.exclude_flagged, split_seed=args.split_seed,
        workers=args.workers or default_workers(), export_nifti=args.export_nifti, log=print,
    )
    print(format_summary(result))
    if usable_count(result.manifest) == 0:
        print("nothing usable: no labelled patient has a cached series (see the reasons above)")
        return 1
    return 0


def _spec_and_modalities(args: argparse.Namespace) -> tuple[object, list[str]]:
    """The preprocessing spec and modalities: from the flags, or from ``--study`` (then no flag)."""
    from mgmt_audit.errors import ConfigError
    from mgmt_audit.study.spec import load_study, preprocess_spec

    given = {key: getattr(args, key) for key in SPEC_FLAGS if getattr(args, key) is not None}
    if args.study is None:
        values = dict(given)
        for key in ("size", "spacing"):
            if key in values:
                values[key] = tuple(values[key])
        return preprocess_spec(values), args.modalities or list(MODALITIES)
    if given:
        flags = ", ".join(SPEC_FLAGS[k] for k in given)
        raise ConfigError(f"--study {args.study} sets the preprocessing; leave out {flags}")
    study = load_study(args.study, args.profile)
    return preprocess_spec(study.preprocess_dict({})), args.modalities or list(study.modalities_read)


def run_overlap(args: argparse.Namespace) -> int:
    from mgmt_audit.data.brats import task1_overlap

    overlap = task1_overlap(args.task1_root, args.ids)
    if not overlap:
        print("no overlap: no Task-1 case is in the given ID set")
        return 0
    print(f"{len(overlap)} Task-1 case(s) in the given ID set (pre-training on them would leak): {' '.join(overlap)}")
    return 1
