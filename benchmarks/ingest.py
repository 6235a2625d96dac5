"""Ingest speed on RSNA-sized files (512 x 512 uint16, RSNA-like slice counts): reading against its
peers, end-to-end ingest with 1 and 2 workers, and the whole step (read -> one output grid) against
MONAI and TorchIO, with the landmark error of each.

    python benchmarks/ingest.py                            # writes a 4-patient, 100-slice cohort first
    python benchmarks/ingest.py --patients 8 --slices 120  # a bigger one
    python benchmarks/ingest.py --root COHORT --rounds 5   # an existing RSNA-MICCAI-layout cohort

Runs from a plain venv (``python -m mgmt_audit.cli``, no ``mgmt-audit`` on PATH needed); needs the
``bench`` extra (SimpleITK, TorchIO). The cohort it writes: phantom heads (the MNI152-based anatomy of
``mgmt_audit.data.phantom``) with a bright 3 mm landmark at a known RAS position, four series per
patient in rotating planes (axial, sagittal, coronal, axial tilted 15 degrees as AC-PC clinical
axials are), ``--slices`` slices covering the head, a 240 mm field of view on a 512 matrix.

Readers, each over every series of the cohort, on one core:
  raw          open(f).read() of every file (the bytes-from-page-cache ceiling)
  naive        [pydicom.dcmread(f).pixel_array for f in sorted(files)]  (public notebooks)
  simpleitk    ImageSeriesReader (GDCM file sort) + DICOMOrient("RAS")
  monai        LoadImage(reader=PydicomReader()) + Orientation("RAS")
  read_series  mgmt_audit.data.dicom.read_series
The page cache is warmed by one untimed pass; readers run in alternating rounds, best round reported.
Then ``ingest`` end to end (read + resample + normalise + cache) with 1 and 2 workers: wall time and the
peak RSS of its largest process; and ``ingest_patient`` over the cohort inside one warmed-up process
(the throughput without the start-up that a small cohort over-weights: imports, torch among them). Then the whole step onto the default grid (256 x 256 x 64 at
0.9375 x 0.9375 x 2.5 mm), one round each, one core:
  mgmt-audit   ingest, 1 worker (its cached arrays and recorded affines)
  monai        LoadImage + Orientation("RAS") + Spacing(target spacing) + ResizeWithPadOrCrop(target
               shape) (``Resize`` would interpolate a second time and change the spacing again)
  torchio      ScalarImage (SimpleITK reader) + ToCanonical + Resample(target spacing) + CropOrPad
Landmark error: the brightest output voxel, through the output's affine, against the planted position.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

from mgmt_audit.data.dicom import read_series  # noqa: E402
from mgmt_audit.data.manifest import MODALITIES, Manifest  # noqa: E402
from mgmt_audit.data.preprocess import PreprocessSpec  # noqa: E402

LANDMARK_OFFSET_MM = np.array([-28.0, 32.0, 22.0])  # from the head centre: left, front, up
LANDMARKS = "landmarks.json"
PLANES = (("axial", 0.0), ("sagittal", 0.0), ("coronal", 0.0), ("axial", 15.0))
HEAD_MM = {"axial": 180.0, "sagittal": 170.0, "coronal": 205.0}  # head extent along each plane's normal


def cli(*args: str) -> list[str]:
    """The mgmt-audit command line through this interpreter (no console script needed)."""
    return [sys.executable, "-m", "mgmt_audit.cli", *args]


def write_cohort(root: Path, patients: int, slices: int, matrix: int) -> None:
    """``root/train/<id>/<modality>/Image-<n>.dcm``, ``root/train_labels.csv`` and the landmarks."""
    from mgmt_audit.data.dicom_writer import plane_geometry, write_series
    from mgmt_audit.data.phantom import synthesize_patient

    landmarks = {}
    for pid in range(patients):
        patient = synthesize_patient(pid, pid % 2, 0.0, seed=0)
        centre = patient.affine[:3, :3] @ (np.array(patient.seg.shape) - 1) / 2 + patient.affine[:3, 3]
        landmark = centre + LANDMARK_OFFSET_MM
        ijk = np.stack(np.meshgrid(*(np.arange(n) for n in patient.seg.shape), indexing="ij"), -1)
        ras = ijk @ patient.affine[:3, :3].T + patient.affine[:3, 3]
        blob = 4.0 * np.exp(-((ras - landmark) ** 2).sum(-1) / (2 * 3.0**2)).astype(np.float32)
        name = f"{pid:05d}"
        landmarks[name] = landmark.tolist()
        for k, modality in enumerate(MODALITIES):
            plane, tilt = PLANES[(pid + k) % len(PLANES)]
            geometry = plane_geometry(plane, center_ras=centre, fov_mm=240.0, matrix=matrix, n_slices=slices,
                                      slice_spacing=HEAD_MM[plane] / slices, tilt_deg=tilt)
            write_series((patient.images[modality] + blob) * 1000.0, patient.affine,
                         root / "train" / name / modality, geometry, patient_id=name,
                         series_description=modality, rescale=(1.0, 0.0), rng=np.random.default_rng(pid))
    with open(root / "train_labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["BraTS21ID", "MGMT_value"])
        writer.writerows((f"{pid:05d}", pid % 2) for pid in range(patients))
    (root / LANDMARKS).write_text(json.dumps(landmarks))


def series_folders(root: Path) -> list[Path]:
    train = root / "train" if (root / "train").is_dir() else root
    return sorted(p for p in train.glob("*/*") if p.is_dir())


def readers() -> dict[str, Callable[[Path], object]]:
    import SimpleITK as sitk
    import torch
    from monai.data import PydicomReader
    from monai.transforms import LoadImage, Orientation

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    torch.set_num_threads(1)
    load = LoadImage(reader=PydicomReader(), image_only=True, ensure_channel_first=True)
    orient = Orientation(axcodes="RAS")

    def raw(folder: Path) -> int:
        return sum(len(p.read_bytes()) for p in folder.iterdir())

    def naive(folder: Path) -> list[np.ndarray]:
        return [pydicom.dcmread(f).pixel_array for f in sorted(folder.iterdir())]

    def simpleitk(folder: Path) -> object:  # the sitk.Image: no numpy conversion is timed
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        return sitk.DICOMOrient(reader.Execute(), "RAS")

    def monai(folder: Path) -> object:
        return orient(load(str(folder)))

    return {"raw": raw, "naive": naive, "simpleitk": simpleitk, "monai": monai, "read_series": read_series}


def check_agreement(folder: Path, fns: dict[str, Callable[[Path], object]]) -> None:
    """read_series, SimpleITK and MONAI give the same RAS array on an axis-aligned series (else stop)."""
    ours = read_series(folder).array
    import SimpleITK as sitk

    itk = sitk.GetArrayFromImage(fns["simpleitk"](folder)).transpose(2, 1, 0)
    mon = fns["monai"](folder)[0].numpy()  # type: ignore[index]
    if not (np.allclose(ours, itk) and np.allclose(ours, mon)):
        sys.exit(f"readers disagree on {folder}: not a fair comparison")


def time_readers(folders: list[Path], fns: dict[str, Callable[[Path], object]], rounds: int) -> dict[str, float]:
    """Best-round seconds per reader over all folders, readers alternating within each round."""
    best = {name: float("inf") for name in fns}
    for round_ in range(rounds + 1):  # round 0 warms the page cache and imports, untimed
        for name, fn in fns.items():
            start = time.perf_counter()
            for folder in folders:
                fn(folder)
            if round_:
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def time_ingest(root: Path, labels: Path, workers: int, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, largest process) of ``ingest`` into the new folder ``out``."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    cmd = cli("ingest", str(root), "--labels", str(labels), "--out", str(out), "--dataset", "none",
              "--workers", str(workers))
    result = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    seconds, rss_kib = result.stdout.split()
    return float(seconds), int(rss_kib) / 1024


def time_in_process(root: Path, out: Path) -> float:
    """Seconds for ``ingest_patient`` over every patient in this process after one untimed warm-up
    patient (imports, first-call set-up): ingest's throughput without the process start-up."""
    from mgmt_audit.data.ingest import PatientTask, ingest_patient, patient_folders

    folders = patient_folders(root, "rsna-miccai")
    tasks = [PatientTask(pid, None, folder, out, "rsna-miccai", MODALITIES, PreprocessSpec(), False)
             for pid, folder in folders.items()]
    ingest_patient(replace(tasks[0], out=out / "warm-up"))
    start = time.perf_counter()
    for task in tasks:
        ingest_patient(task)
    return time.perf_counter() - start


def landmark_error(array: np.ndarray, affine: np.ndarray, truth: list[float]) -> float:
    """mm between the brightest voxel (through ``affine``) and the planted landmark."""
    peak = np.array(np.unravel_index(np.argmax(array), array.shape), dtype=float)
    return float(np.linalg.norm(affine[:3, :3] @ peak + affine[:3, 3] - np.array(truth)))


def our_errors(cache: Path, landmarks: dict[str, list[float]]) -> list[float]:
    manifest = Manifest.load(cache)
    errors = []
    for patient in manifest.patients:
        for modality, record in patient.series.items():
            if record.ok:
                array = np.load(manifest.array_path(patient, modality))
                errors.append(landmark_error(array, np.array(record.affine), landmarks[patient.id]))
    return errors


def peers(spec: PreprocessSpec) -> dict[str, Callable[[Path], tuple[np.ndarray, np.ndarray]]]:
    """Each peer's whole step onto ``spec``'s spacing and shape: (array, 4x4 RAS affine)."""
    import torch
    import torchio as tio
    from monai.data import PydicomReader
    from monai.transforms import Compose, LoadImage, Orientation, ResizeWithPadOrCrop, Spacing

    torch.set_num_threads(1)
    monai_step = Compose([
        LoadImage(reader=PydicomReader(), image_only=True, ensure_channel_first=True),
        Orientation(axcodes="RAS"),
        Spacing(pixdim=spec.spacing, mode="bilinear"),
        ResizeWithPadOrCrop(spatial_size=spec.shape),
    ])
    torchio_step = tio.Compose([tio.ToCanonical(), tio.Resample(spec.spacing), tio.CropOrPad(spec.shape)])

    def monai(folder: Path) -> tuple[np.ndarray, np.ndarray]:
        image = monai_step(str(folder))
        return image[0].numpy(), np.asarray(image.affine, dtype=float)

    def torchio(folder: Path) -> tuple[np.ndarray, np.ndarray]:
        image = torchio_step(tio.ScalarImage(folder))
        return image.data[0].numpy(), np.asarray(image.affine, dtype=float)

    return {"monai": monai, "torchio": torchio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="existing cohort (default: write one)")
    parser.add_argument("--patients", type=int, default=4, help="patients of the written cohort (default: 4)")
    parser.add_argument("--slices", type=int, default=100, help="slices per series of the written cohort (default: 100)")
    parser.add_argument("--matrix", type=int, default=512, help="in-plane matrix of the written cohort (default: 512)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per reader (default: 3)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the end-to-end ingest timing")
    parser.add_argument("--no-peers", action="store_true", help="skip the MONAI and TorchIO whole-step peers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "cohort"
            print(f"writing {args.patients} patients x 4 series x {args.slices} slices of "
                  f"{args.matrix} x {args.matrix} ...", flush=True)
            write_cohort(root, args.patients, args.slices, args.matrix)
        folders = series_folders(root)
        n_files = sum(len(list(f.iterdir())) for f in folders)
        size = sum(p.stat().st_size for f in folders for p in f.iterdir()) / 2**20
        print(f"cohort: {len(folders)} series, {n_files} files, {size:.0f} MiB; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        fns = readers()
        check_agreement(next(f for f in folders if read_series(f).oblique_deg == 0), fns)
        best = time_readers(folders, fns, args.rounds)
        rate = {name: n_files / seconds for name, seconds in best.items()}
        for name, value in rate.items():
            print(f"  {name:12s} {value:8.0f} files/s  ({best[name]:.2f} s)")
        print(f"  read_series / raw       {rate['read_series'] / rate['raw']:.3f}  (target >= 0.45)")
        print(f"  read_series / simpleitk {rate['read_series'] / rate['simpleitk']:.2f}  (target >= 2)")
        print(f"  read_series / naive     {rate['read_series'] / rate['naive']:.2f}")
        print(f"  read_series / monai     {rate['read_series'] / rate['monai']:.2f}")
        if args.no_ingest:
            return
        labels = root / "train_labels.csv"
        timings = {w: time_ingest(root, labels, w, Path(scratch) / f"cache{w}") for w in (1, 2)}
        for w, (seconds, rss) in timings.items():
            print(f"  ingest {w} worker(s)  {n_files / seconds:8.0f} files/s  ({seconds:.1f} s, "
                  f"peak RSS {rss:.0f} MiB)")
        one = n_files / timings[1][0]
        steady = n_files / time_in_process(root, Path(scratch) / "in-process")
        print(f"  ingest in process       {steady:8.0f} files/s  (1 core, after start-up: imports, workers)")
        print(f"  ingest 1w / read_series {one / rate['read_series']:.2f}  (target >= 0.35); in process "
              f"{steady / rate['read_series']:.2f}")
        print(f"  ingest 2w / 1w          {timings[1][0] / timings[2][0]:.2f}x  (target >= 1.7)")
        if args.no_peers:
            return
        spec = PreprocessSpec()
        landmarks = json.loads((root / LANDMARKS).read_text()) if (root / LANDMARKS).is_file() else None
        print(f"whole step: read -> {spec.describe()}, one core")
        print(f"  {'pipeline':12s} {'files/s':>8s}  landmark error mm (mean / max over {len(folders)} series)")
        rows = {"mgmt-audit": (one, our_errors(Path(scratch) / "cache1", landmarks) if landmarks else [])}
        for name, step in peers(spec).items():
            step(folders[0])  # imports and first-call set-up, untimed
            errors, start = [], time.perf_counter()
            for folder in folders:
                array, affine = step(folder)
                if landmarks:
                    errors.append(landmark_error(array, affine, landmarks[folder.parent.name]))
            rows[name] = (n_files / (time.perf_counter() - start), errors)
        for name, (files_per_s, errors) in rows.items():
            error = f"{np.mean(errors):5.2f} / {np.max(errors):5.2f}" if errors else "  (no landmarks)"
            print(f"  {name:12s} {files_per_s:8.0f}  {error}")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
