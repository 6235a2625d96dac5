"""``mgmt-audit phantom``: write a synthetic cohort in the Kaggle RSNA-MICCAI layout."""

from __future__ import annotations

import argparse
import time


def register(subparsers) -> None:
    """Add the ``phantom`` command."""
    parser = subparsers.add_parser(
        "phantom",
        help="write a phantom cohort (real DICOM) with no signal or a planted one",
        description=(
            "Write OUT/train/<id>/{FLAIR,T1w,T1wCE,T2w}/Image-<n>.dcm and OUT/train_labels.csv: "
            "a template brain (MNI152) with a synthetic glioblastoma per patient, rigidly jittered, "
            "acquired in mixed planes with irregular slice numbering, balanced MGMT labels. "
            "--signal 0 makes the images independent of the label (a negative control); methylated "
            "tumours get a brighter core and rim on FLAIR and T1wCE and a larger size as the signal "
            "grows (0.25 weak, 0.5 intermediate, 1 strong); --shape K lobulates methylated tumours at "
            "equal volume (a geometry signal, intensities untouched). The same --seed gives identical files."
        ),
    )
    parser.add_argument("out", metavar="OUT", help="folder to create (must not hold a cohort yet)")
    parser.add_argument("--patients", type=int, default=48, help="number of patients (default: 48)")
    parser.add_argument(
        "--signal", type=float, default=0.0,
        help="planted effect size S: 0 none, 0.25 weak, 0.5 intermediate, 1 strong (default: 0)",
    )
    parser.add_argument(
        "--shape", type=float, default=0.0,
        help="planted shape signal K in [0, 2]: methylated lesions lobulated at equal volume (1 strong; default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for anatomy, acquisition, labels (default: 0)")
    parser.add_argument(
        "--nifti", action="store_true",
        help="also write BraTS 2021 Task 1 files OUT/brats/BraTS2021_<id>/*_{flair,t1,t1ce,t2,seg}.nii.gz",
    )
    parser.add_argument(
        "--matrix", type=int, default=64,
        help="in-plane pixels per slice (default: 64; 512 gives RSNA-sized files for benchmarks)",
    )
    parser.add_argument("--start-id", type=int, default=0, help="first patient ID (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="processes writing patients (default: 2)")
    parser.add_argument(
        "--confound", metavar="plane:P",
        help="plant an acquisition confound: label-1 patients' FLAIR acquired sagittal with probability P, "
        "label-0 patients' with 1 - P (otherwise axial or coronal); e.g. plane:0.9 (default: none)",
    )
    parser.set_defaults(func=_phantom)


def _phantom(args: argparse.Namespace) -> int:
    from mgmt_audit.data.phantom import Confound, write_phantom_cohort

    start = time.perf_counter()
    confound = None if args.confound is None else Confound.parse(args.confound)
    cohort = write_phantom_cohort(
        args.out, patients=args.patients, signal=args.signal, shape=args.shape, seed=args.seed, nifti=args.nifti,
        matrix=args.matrix, workers=args.workers, start_id=args.start_id, confound=confound,
    )
    methylated = sum(cohort.labels.values())
    print(
        f"wrote {len(cohort.labels)} patients ({methylated} methylated), signal {args.signal:g}, shape {args.shape:g}, "
        f"seed {args.seed}, matrix {args.matrix}{f', confound {confound}' if confound else ''}, in {time.perf_counter() - start:.1f} s"
    )
    print(f"  DICOM:  {cohort.root / 'train'}")
    print(f"  labels: {cohort.labels_csv}")
    if cohort.brats is not None:
        print(f"  BraTS:  {cohort.brats}")
    return 0
