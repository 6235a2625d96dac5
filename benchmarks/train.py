"""Training step time: the real cache-backed loader + model against the same model fed in-memory
random tensors of the same shape, in the same run. Target: cache / memory <= 1.10.

    python benchmarks/train.py                       # smoke resnet18_2d on the slices view
    python benchmarks/train.py --profile paper       # published widths (slow on CPU)
    python benchmarks/train.py --model resnet10_3d --view volume --size 64 64 32 --device cuda

The cache is a throwaway one (random float32 arrays written through the real Manifest + save_array
layout) so the loader reads memory-mapped .npy files exactly as in a study. The two sources take
turns step by step and the median step time of each is reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mgmt_audit.data.datasets import make_view
from mgmt_audit.data.cache import save_array
from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord
from mgmt_audit.models import build, default_params
from mgmt_audit.train.devices import resolve_device
from mgmt_audit.train.loop import make_loader


def write_random_cache(folder: Path, patients: int, shape: tuple[int, int, int], modalities: list[str]) -> Manifest:
    """A cache of ``patients`` random volumes (alternating labels) in the ingest layout."""
    rng = np.random.default_rng(0)
    records = []
    for n in range(patients):
        pid, series = f"{n:05d}", {}
        (folder / pid).mkdir(parents=True)
        for modality in modalities:
            save_array(folder / pid / f"{modality}.npy", rng.standard_normal(shape, dtype=np.float32))
            series[modality] = SeriesRecord(modality, True, "ok", shape=list(shape), path=f"{pid}/{modality}.npy")
        records.append(PatientRecord(pid, n % 2, "ok", series=series))
    manifest = Manifest("benchmark", "rsna-miccai", modalities, {}, "benchmark", 0, records)
    manifest.save(folder)
    return manifest


def time_steps(model, optimizer, batches, device, steps: int) -> list[float]:
    """Wall time of each of ``steps`` training steps drawn from the ``batches`` iterator."""
    loss_fn = torch.nn.BCEWithLogitsLoss()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x).reshape(-1), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def cache_batches(loader):
    while True:
        for x, y, _ in loader:
            yield x, y


def memory_batches(shape: tuple[int, ...], batch_size: int, pin: bool):
    x = torch.randn(batch_size, *shape)
    y = (torch.arange(batch_size) % 2).float()
    if pin:
        x, y = x.pin_memory(), y.pin_memory()
    while True:
        yield x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18_2d")
    parser.add_argument("--profile", choices=("paper", "smoke"), default="smoke",
                        help="model sizes: published (paper) or tiny CPU sizes (smoke)")
    parser.add_argument("--view", default="slices")
    parser.add_argument("--size", type=int, nargs=3, default=(128, 128, 32), metavar=("H", "W", "D"))
    parser.add_argument("--modalities", nargs="+", default=["FLAIR"])
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers (default 0, as TrainConfig: on a 2-core CPU a worker competes "
                        "with torch's threads; use 2-8 on a GPU machine)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per source")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_random_cache(Path(tmp), args.patients, tuple(args.size), args.modalities)
        view = make_view(args.view, manifest, [p.id for p in manifest.patients], modalities=args.modalities)
        shape = view.sample_shape
        params = default_params(args.model, args.profile)
        model = build(args.model, in_channels=shape[0], spatial_size=shape[1:], **params).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        loader = make_loader(view, batch_size=args.batch_size, num_workers=args.workers, seed=0,
                             shuffle=True, device=device)
        sources = {
            "cache": cache_batches(loader),
            "memory": memory_batches(shape, args.batch_size, device.type == "cuda"),
        }
        for batches in sources.values():  # warm-up: allocator, cudnn autotune, worker start
            time_steps(model, optimizer, batches, device, 3)
        times: dict[str, list[float]] = {name: [] for name in sources}
        for _ in range(args.steps):  # alternate step by step so load from other processes hits both
            for name, batches in sources.items():
                times[name] += time_steps(model, optimizer, batches, device, 1)
    cache, memory = (statistics.median(times[name]) for name in ("cache", "memory"))
    print(f"device {device}  torch threads {torch.get_num_threads()}  loader workers {args.workers}")
    print(f"{args.model} ({args.profile}) on view {args.view!r}, batch {args.batch_size} x {shape}")
    print(f"median step: cache-backed {cache * 1e3:.1f} ms   in-memory {memory * 1e3:.1f} ms   "
          f"ratio {cache / memory:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
