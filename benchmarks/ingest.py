"""DICOM reading speed on RSNA-sized files (512x512 uint16): read_series against its peers.

    python benchmarks/ingest.py                          # writes an 8-patient phantom cohort first
    python benchmarks/ingest.py --root COHORT --rounds 5 # an existing RSNA-MICCAI-layout cohort

Readers, each over every series of the cohort, on one core:
  raw          open(f).read() of every file (the bytes-from-page-cache ceiling)
  naive        [pydicom.dcmread(f).pixel_array for f in sorted(files)]  (public notebooks)
  simpleitk    ImageSeriesReader (GDCM file sort) + DICOMOrient("RAS")
  monai        LoadImage(reader=PydicomReader()) + Orientation("RAS")
  read_series  mgmt_audit.data.dicom.read_series
Then `mgmt-audit ingest` end to end (read + preprocess + cache) with 1 and 2 workers: wall time and the
peak RSS of its largest process. The page cache is warmed by one untimed pass of every reader; the
readers then run in alternating rounds and each one's best round is reported.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pydicom  # noqa: E402

from mgmt_audit.data.dicom import read_series  # noqa: E402


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
    """read_series, SimpleITK and MONAI give the same RAS array on one series (else stop)."""
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


def time_ingest(root: Path, labels: Path, workers: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, largest process) of `mgmt-audit ingest` into a new folder."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    with tempfile.TemporaryDirectory() as out:
        cmd = ["mgmt-audit", "ingest", str(root), "--labels", str(labels), "--out", out,
               "--dataset", "none", "--workers", str(workers)]
        result = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    seconds, rss_kib = result.stdout.split()
    return float(seconds), int(rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="existing cohort (default: write a phantom one)")
    parser.add_argument("--patients", type=int, default=8, help="phantom patients (default: 8)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per reader (default: 3)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the end-to-end ingest timing")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "cohort"
            subprocess.run(["mgmt-audit", "phantom", str(root), "--patients", str(args.patients),
                            "--matrix", "512", "--workers", "2"], check=True, stdout=subprocess.DEVNULL)
        folders = series_folders(root)
        n_files = sum(len(list(f.iterdir())) for f in folders)
        size = sum(p.stat().st_size for f in folders for p in f.iterdir()) / 2**20
        print(f"cohort: {len(folders)} series, {n_files} files, {size:.0f} MiB; "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        fns = readers()
        check_agreement(folders[0], fns)
        best = time_readers(folders, fns, args.rounds)
        rate = {name: n_files / seconds for name, seconds in best.items()}
        for name, value in rate.items():
            print(f"  {name:12s} {value:8.0f} files/s  ({best[name]:.2f} s)")
        print(f"  read_series / raw       {rate['read_series'] / rate['raw']:.3f}  (target >= 0.45)")
        print(f"  read_series / simpleitk {rate['read_series'] / rate['simpleitk']:.2f}  (target >= 2)")
        print(f"  read_series / naive     {rate['read_series'] / rate['naive']:.2f}")
        print(f"  read_series / monai     {rate['read_series'] / rate['monai']:.2f}")
        if not args.no_ingest:
            labels = root / "train_labels.csv"
            timings = {w: time_ingest(root, labels, w) for w in (1, 2)}
            for w, (seconds, rss) in timings.items():
                print(f"  ingest {w} worker(s)  {n_files / seconds:8.0f} files/s  ({seconds:.1f} s, "
                      f"peak RSS {rss:.0f} MiB)")
            print(f"  ingest 2w / 1w          {timings[1][0] / timings[2][0]:.2f}x")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
